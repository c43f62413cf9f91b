//! Go's `text/tabwriter` elastic tabstops, as kubectl configures them.

/// Align tab-separated cells the way Go's `text/tabwriter` does with a
/// space pad character and no flags: a column's width is computed over a
/// *block* of consecutive lines that have a tab-terminated cell in that
/// column, as `max(minwidth, widest cell + padding)`; the text after a
/// line's last tab is not part of any column and is never padded.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut tw = TabWriter {
        lines: &lines,
        widths: Vec::new(),
        minwidth,
        padding,
        out: String::with_capacity(text.len() * 2),
    };
    tw.format(0, lines.len());
    tw.out
}

pub(crate) struct TabWriter<'a> {
    pub(crate) lines: &'a [Vec<&'a str>],
    pub(crate) widths: Vec<usize>,
    pub(crate) minwidth: usize,
    pub(crate) padding: usize,
    pub(crate) out: String,
}

impl TabWriter<'_> {
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            // The last cell of a line is not tab-terminated: it belongs to no column.
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(cell_width(self.lines[this][column]) + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                self.out.push_str(cell);
                if let Some(&w) = self.widths.get(j) {
                    let pad = w.saturating_sub(cell_width(cell));
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if i + 1 != self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

pub(crate) fn cell_width(s: &str) -> usize {
    s.chars().count()
}
