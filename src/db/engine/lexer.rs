//! A small SQL lexer: just enough of Postgres's lexical rules to read the words of a statement
//! outside its string literals, quoted identifiers and comments, so that `guard` can tell what
//! a statement does without a parser.
//!
//! It follows `scan.l` where a mistake would hide a word or invent one: nested `/* */`
//! comments, `--` to the end of the line, `'…'` with `''` (and `E'…'` with backslash escapes),
//! `"…"` with `""`, dollar quotes with a tag (`$fn$…$fn$`), and `$1` parameters. Everything is
//! bytes: a statement costs one pass over its text, with no allocation.

/// One token of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// A keyword or an unquoted identifier, as written (compare with `is`).
    Word(&'a str),
    /// A `"quoted"` identifier's text, its `""` still doubled.
    Quoted(&'a str),
    /// A string literal's text between its quotes, escapes as written.
    Str(&'a str),
    /// A dollar-quoted string's body (a `DO` block's or a function's code).
    Dollar(&'a str),
    /// `$n`.
    Param(usize),
    /// A number.
    Number,
    /// Any other single character (`(`, `,`, `;`, `.`, an operator's character).
    Punct(u8),
}

impl Token<'_> {
    /// Whether this is the keyword or unquoted name `word` (lower case), in any case.
    pub fn is(&self, word: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(word))
    }

    /// A name as Postgres folds it: unquoted words to lower case, quoted ones as written.
    pub fn name(&self) -> Option<String> {
        match self {
            Token::Word(w) => Some(w.to_ascii_lowercase()),
            Token::Quoted(q) => Some(q.replace("\"\"", "\"")),
            _ => None,
        }
    }

    /// A literal's value as text: a string's (escapes undone) or a dollar body's.
    pub fn text(&self) -> Option<String> {
        match self {
            Token::Str(s) => Some(s.replace("''", "'")),
            Token::Dollar(s) => Some(s.to_string()),
            _ => None,
        }
    }
}

/// The tokens of `sql`, in order. An unterminated literal or comment ends the stream (the server
/// will refuse the statement itself).
pub struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        Lexer {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    /// Skips whitespace and comments; false when a comment never ends.
    fn skip_blank(&mut self) -> bool {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(b), _) if b.is_ascii_whitespace() => self.at += 1,
                (Some(b'-'), Some(b'-')) => match memchr(b'\n', &self.bytes[self.at..]) {
                    Some(end) => self.at += end + 1,
                    None => self.at = self.bytes.len(),
                },
                (Some(b'/'), Some(b'*')) => {
                    if !self.skip_block_comment() {
                        return false;
                    }
                }
                _ => return true,
            }
        }
    }

    /// `/* … */`, nested as Postgres nests them.
    fn skip_block_comment(&mut self) -> bool {
        let mut depth = 0usize;
        while self.at < self.bytes.len() {
            match (self.peek(0), self.peek(1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    self.at += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    self.at += 2;
                    if depth == 0 {
                        return true;
                    }
                }
                _ => self.at += 1,
            }
        }
        false
    }

    /// A `'…'` literal starting at the quote; `backslash` for `E'…'`. Its body, or None when it
    /// never ends.
    fn quoted(&mut self, quote: u8, backslash: bool) -> Option<&'a str> {
        let start = self.at + 1;
        let mut i = start;
        while i < self.bytes.len() {
            let b = self.bytes[i];
            if backslash && b == b'\\' {
                i += 2;
                continue;
            }
            if b == quote {
                if self.bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                self.at = i + 1;
                return Some(&self.text[start..i]);
            }
            i += 1;
        }
        None
    }

    /// `$tag$ … $tag$` (the tag may be empty) at `self.at`, or a `$n` parameter.
    fn dollar(&mut self) -> Option<Token<'a>> {
        let rest = &self.bytes[self.at + 1..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            let number = self.text[self.at + 1..self.at + 1 + digits]
                .parse()
                .unwrap_or(usize::MAX);
            self.at += 1 + digits;
            return Some(Token::Param(number));
        }
        let tag_len = rest
            .iter()
            .take_while(|&&b| is_word_byte(b) && b != b'$')
            .count();
        if rest.get(tag_len) != Some(&b'$') {
            self.at += 1;
            return Some(Token::Punct(b'$'));
        }
        let delimiter = &self.text[self.at..self.at + tag_len + 2];
        let body_start = self.at + delimiter.len();
        let end = find(&self.bytes[body_start..], delimiter.as_bytes())?;
        self.at = body_start + end + delimiter.len();
        Some(Token::Dollar(&self.text[body_start..body_start + end]))
    }

    fn word(&mut self) -> &'a str {
        let start = self.at;
        while self.peek(0).is_some_and(is_word_byte) {
            self.at += 1;
        }
        &self.text[start..self.at]
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        if !self.skip_blank() {
            return None;
        }
        let b = self.peek(0)?;
        Some(match b {
            b'\'' => Token::Str(self.quoted(b'\'', false)?),
            b'"' => Token::Quoted(self.quoted(b'"', false)?),
            b'$' => self.dollar()?,
            b'0'..=b'9' => {
                while self
                    .peek(0)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
                {
                    self.at += 1;
                }
                Token::Number
            }
            b if is_word_start(b) => {
                // E'…' (and e'…') is an escape string: a backslash escapes its quote.
                if (b == b'e' || b == b'E') && self.peek(1) == Some(b'\'') {
                    self.at += 1;
                    return Some(Token::Str(self.quoted(b'\'', true)?));
                }
                Token::Word(self.word())
            }
            other => {
                self.at += 1;
                Token::Punct(other)
            }
        })
    }
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_byte(b: u8) -> bool {
    is_word_start(b) || b.is_ascii_digit() || b == b'$'
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> Vec<String> {
        Lexer::new(sql)
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_and_literals_hide_their_words() {
        assert_eq!(
            words("/* begin /* nested */ still */ -- set role\n select 'begin' as \"set\""),
            ["select", "as"]
        );
        assert_eq!(words("select E'it\\'s set' , 'a''b' x"), ["select", "x"]);
        assert_eq!(
            words("select $f$ set role $x$ $f$, $$reset$$ y"),
            ["select", "y"]
        );
        assert_eq!(words("select a$b, $1"), ["select", "a$b"]);
    }

    #[test]
    fn tokens_carry_their_text() {
        let tokens: Vec<Token> = Lexer::new("set_config('role', $2, true)").collect();
        assert_eq!(
            tokens,
            [
                Token::Word("set_config"),
                Token::Punct(b'('),
                Token::Str("role"),
                Token::Punct(b','),
                Token::Param(2),
                Token::Punct(b','),
                Token::Word("true"),
                Token::Punct(b')'),
            ]
        );
        assert_eq!(Token::Quoted("a\"\"b").name().unwrap(), "a\"b");
        assert_eq!(Token::Str("o''k").text().unwrap(), "o'k");
    }

    #[test]
    fn unterminated_input_ends_the_stream_without_panicking() {
        for sql in [
            "select 'open",
            "/* open",
            "select \"open",
            "do $x$ open",
            "$",
            "e'",
            "$1",
        ] {
            let _ = Lexer::new(sql).count();
        }
        assert_eq!(words("select 1 /* never ends"), ["select"]);
    }
}
#[cfg(test)]
mod cost {
    #[test]
    #[ignore]
    fn lexer_cost() {
        let sql = "select id, name, email from users where id = $1 and org = $2";
        let rounds = 1_000_000;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(super::Lexer::new(std::hint::black_box(sql)).count());
        }
        let ns = started.elapsed().as_nanos() as f64 / rounds as f64;
        println!("lexer: {ns:.0} ns");
    }
}
