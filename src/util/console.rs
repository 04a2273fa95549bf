//! Whole lines to the terminal in one write each.
//!
//! `eprintln!` may split a line into several writes (one per formatted piece); when processes
//! share a terminal or a pipe (the ranks of `reslab launch`), their pieces then interleave. A line
//! written at once (atomic on a pipe up to PIPE_BUF bytes) stays whole.

use std::io::Write;

/// Writes `line` and a newline to stderr in one write.
pub fn eprint_line(line: &str) {
    let _ = std::io::stderr().lock().write_all(with_newline(line).as_bytes());
}

/// Writes `line` and a newline to stdout in one write, flushed at once.
pub fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.flush();
    let _ = stdout.write_all(with_newline(line).as_bytes());
    let _ = stdout.flush();
}

fn with_newline(line: &str) -> String {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    text
}

/// `eprintln!` whose line reaches stderr in one write (see the module's note).
#[macro_export]
macro_rules! eprint_line {
    ($($arg:tt)*) => {
        $crate::util::console::eprint_line(&format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_ends_with_one_newline() {
        assert_eq!(super::with_newline("rank 1: error: x"), "rank 1: error: x\n");
        assert_eq!(super::with_newline(""), "\n");
    }
}
