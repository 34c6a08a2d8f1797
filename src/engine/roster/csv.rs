//! A small RFC 4180 reader for roster files: comma-separated fields, optional double quotes around
//! a field (which may then hold commas, line breaks and doubled quotes), LF or CRLF line ends.

use std::borrow::Cow;
use std::fmt;

/// What is wrong with a CSV record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CsvProblem {
    /// A quoted field runs to the end of the text.
    UnterminatedQuote,
    /// A `"` inside a field that does not start with one.
    QuoteInUnquotedField,
    /// Something other than a comma or a line end right after a closing quote.
    TextAfterQuote,
}

impl fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CsvProblem::UnterminatedQuote => {
                "a quoted field is never closed (inside quotes, write a `\"` as `\"\"`)"
            }
            CsvProblem::QuoteInUnquotedField => {
                "a `\"` inside an unquoted field: quote the whole field and write the `\"` as `\"\"`"
            }
            CsvProblem::TextAfterQuote => {
                "text after the closing quote of a field (inside quotes, write a `\"` as `\"\"`)"
            }
        })
    }
}

/// One record: the line it starts on (1-based) and its fields.
pub type Record<'a> = (usize, Vec<Cow<'a, str>>);

/// The records of `text` in order. Empty lines are skipped; a failed record ends the iteration.
pub struct Records<'a> {
    rest: &'a str,
    line: usize,
    failed: bool,
}

impl<'a> Records<'a> {
    /// Reads `text`, ignoring a leading byte order mark.
    pub fn new(text: &'a str) -> Self {
        Records {
            rest: text.strip_prefix('\u{feff}').unwrap_or(text),
            line: 1,
            failed: false,
        }
    }

    /// Skips empty lines; `false` at the end of the text.
    fn skip_empty_lines(&mut self) -> bool {
        loop {
            if let Some(r) = self.rest.strip_prefix("\r\n") {
                self.rest = r;
            } else if let Some(r) = self.rest.strip_prefix('\n') {
                self.rest = r;
            } else {
                return !self.rest.is_empty();
            }
            self.line += 1;
        }
    }

    /// Reads one record starting at `self.rest`, leaving `self.rest` after its line end.
    fn record(&mut self) -> Result<Vec<Cow<'a, str>>, CsvProblem> {
        let mut fields = Vec::new();
        loop {
            let field = if self.rest.starts_with('"') {
                self.quoted()?
            } else {
                self.unquoted()?
            };
            fields.push(field);
            if let Some(r) = self.rest.strip_prefix(',') {
                self.rest = r;
                continue;
            }
            if let Some(r) = self.rest.strip_prefix("\r\n") {
                self.rest = r;
            } else if let Some(r) = self.rest.strip_prefix('\n') {
                self.rest = r;
            } else if !self.rest.is_empty() {
                return Err(CsvProblem::TextAfterQuote);
            }
            self.line += 1;
            return Ok(fields);
        }
    }

    /// An unquoted field: up to the next comma or line end.
    fn unquoted(&mut self) -> Result<Cow<'a, str>, CsvProblem> {
        let end = self.rest.find([',', '\n']).unwrap_or(self.rest.len());
        let mut field = &self.rest[..end];
        if self.rest[end..].starts_with('\n') {
            field = field.strip_suffix('\r').unwrap_or(field);
        }
        if field.contains('"') {
            return Err(CsvProblem::QuoteInUnquotedField);
        }
        self.rest = &self.rest[field.len()..];
        Ok(Cow::Borrowed(field))
    }

    /// A quoted field, starting at its opening quote; doubled quotes inside become one.
    fn quoted(&mut self) -> Result<Cow<'a, str>, CsvProblem> {
        let body = &self.rest[1..];
        let mut owned: Option<String> = None;
        let mut start = 0;
        loop {
            let close = body[start..]
                .find('"')
                .map(|i| start + i)
                .ok_or(CsvProblem::UnterminatedQuote)?;
            self.line += body[start..close].matches('\n').count();
            if body[close + 1..].starts_with('"') {
                owned
                    .get_or_insert_with(String::new)
                    .push_str(&body[start..=close]);
                start = close + 2;
                continue;
            }
            self.rest = &body[close + 1..];
            return Ok(match owned {
                Some(mut s) => {
                    s.push_str(&body[start..close]);
                    Cow::Owned(s)
                }
                None => Cow::Borrowed(&body[..close]),
            });
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, (usize, CsvProblem)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || !self.skip_empty_lines() {
            return None;
        }
        let line = self.line;
        match self.record() {
            Ok(fields) => Some(Ok((line, fields))),
            Err(problem) => {
                self.failed = true;
                Some(Err((line, problem)))
            }
        }
    }
}

/// `fields` as one CSV line (without its line end), quoting where RFC 4180 needs it.
#[cfg(test)]
pub fn write_line(fields: &[&str]) -> String {
    let quote = |f: &&str| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    fields.iter().map(quote).collect::<Vec<_>>().join(",")
}
