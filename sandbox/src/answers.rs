//! A compute run's answers, checked on the host before any judge reads them.
//!
//! An answer is base64 of CPython `marshal` bytes written in the program's
//! interpreter, so every byte of it is hostile. `marshal.loads` is not made
//! for such input: a reference to a container still being built hands out a
//! half-made object, a code object is built on request, an "ASCII" string
//! need not be ASCII, and shared references can make a small answer an
//! exponentially large tree for the judge to walk. A judge interpreter is
//! reused across samples ([`crate::Sandbox::run_trusted`]), so nothing it
//! reads may be able to corrupt it. This module accepts exactly the plain
//! data types the harness answers with, well formed, acyclic and of bounded
//! size; anything else becomes an answer the judge reports as unreadable.

use base64::Engine as _;

/// Nesting deeper than CPython's own `marshal` limit is refused.
const MAX_DEPTH: usize = 2000;

/// Values an answer may stand for once shared references are expanded: the
/// judge walks and compares the expanded tree.
const MAX_NODES: u64 = 20_000_000;

/// Why an answer was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("not base64")]
    Base64,
    #[error("ends early at byte {0}")]
    Truncated(usize),
    #[error("type code {code:#04x} at byte {at} is not plain data")]
    Type { code: u8, at: usize },
    #[error("bad length at byte {0}")]
    Length(usize),
    #[error("reference {index} at byte {at} is not a finished value")]
    Reference { index: u32, at: usize },
    #[error("an integer at byte {0} is not normalised")]
    Integer(usize),
    #[error("an ASCII string at byte {0} holds non-ASCII bytes")]
    Ascii(usize),
    #[error("nested deeper than {MAX_DEPTH}")]
    Depth,
    #[error("stands for more than {MAX_NODES} values")]
    Size,
    #[error("{0} bytes left over")]
    Trailing(usize),
}

/// Check one answer (base64 of marshal data).
pub fn check(answer: &str) -> Result<(), AnswerError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer)
        .map_err(|_| AnswerError::Base64)?;
    check_marshal(&bytes)
}

/// Check marshal bytes: one plain value and nothing after it.
pub(crate) fn check_marshal(bytes: &[u8]) -> Result<(), AnswerError> {
    let mut r = Reader {
        bytes,
        at: 0,
        refs: Vec::new(),
    };
    let nodes = r.value(0)?;
    if nodes > MAX_NODES {
        return Err(AnswerError::Size);
    }
    match bytes.len() - r.at {
        0 => Ok(()),
        left => Err(AnswerError::Trailing(left)),
    }
}

/// Replace every answer that is not plain data (a string of checked
/// marshal data) with `null`, which the judge reports as "the program's
/// answer is not readable data".
pub(crate) fn sanitise(answers: &mut [serde_json::Value]) {
    for a in answers {
        if a.as_str().is_none_or(|s| check(s).is_err()) {
            *a = serde_json::Value::Null;
        }
    }
}

/// An answer's value written one way only, to compare two answers as data:
/// strings of every marshal kind as one kind, shared references expanded.
/// Equal forms are values equal under Python's `==` (exact builtin types,
/// no NaN); values whose forms differ may still be equal (`1 == True`,
/// `{1, 2} == {2, 1}`), which is left to a judge. `None` for a NaN (not
/// equal to itself), for what is not plain data, and once the form would
/// pass `cap` bytes.
pub(crate) fn canonical(answer: &str, cap: usize) -> Option<Vec<u8>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer)
        .ok()?;
    let mut c = Canon {
        r: Reader {
            bytes: &bytes,
            at: 0,
            refs: Vec::new(),
        },
        out: Vec::new(),
        refs: Vec::new(),
        cap,
    };
    c.value(0)?;
    (c.r.at == bytes.len()).then_some(c.out)
}

/// A [`Reader`] over checked bytes that writes each value's form.
struct Canon<'a> {
    r: Reader<'a>,
    out: Vec<u8>,
    /// Per reference slot: where its form is in `out`, once finished.
    refs: Vec<Option<(usize, usize)>>,
    cap: usize,
}

impl Canon<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        self.r.take(n).ok()
    }

    fn byte(&mut self) -> Option<u8> {
        self.r.byte().ok()
    }

    fn len(&mut self) -> Option<usize> {
        self.r.len(1).ok()
    }

    fn emit(&mut self, code: u8, parts: &[&[u8]]) -> Option<()> {
        let n = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        if self.out.len() + n > self.cap {
            return None;
        }
        self.out.push(code);
        for p in parts {
            self.out.extend_from_slice(p);
        }
        Some(())
    }

    fn not_nan(b: &[u8]) -> bool {
        b.chunks(8)
            .all(|c| c.try_into().is_ok_and(|c| !f64::from_le_bytes(c).is_nan()))
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let code = self.byte()?;
        let slot = (code & 0x80 != 0).then(|| {
            self.refs.push(None);
            self.refs.len() - 1
        });
        let start = self.out.len();
        match code & 0x7f {
            c @ (b'N' | b'F' | b'T') => self.emit(c, &[])?,
            b'i' => {
                let b = self.take(4)?.to_vec();
                self.emit(b'i', &[&b])?;
            }
            c @ (b'g' | b'y') => {
                let b = self.take(if c == b'g' { 8 } else { 16 })?.to_vec();
                if !Self::not_nan(&b) {
                    return None;
                }
                self.emit(c, &[&b])?;
            }
            b'l' => {
                let n = self.r.i32().ok()?;
                let digits = self.take(n.unsigned_abs() as usize * 2)?.to_vec();
                self.emit(b'l', &[&n.to_le_bytes(), &digits])?;
            }
            c @ (b's' | b'u' | b't' | b'a' | b'A' | b'z' | b'Z') => {
                let n = if matches!(c, b'z' | b'Z') {
                    usize::from(self.byte()?)
                } else {
                    self.len()?
                };
                let text = self.take(n)?.to_vec();
                let kind = if c == b's' { b's' } else { b'u' };
                self.emit(kind, &[&u32::try_from(n).ok()?.to_le_bytes(), &text])?;
            }
            b'r' => {
                let index = usize::try_from(self.r.i32().ok()?).ok()?;
                let (a, b) = (*self.refs.get(index)?)?;
                if slot.is_some() || self.out.len() + (b - a) > self.cap {
                    return None;
                }
                self.out.extend_from_within(a..b);
            }
            c @ (b'(' | b')' | b'[' | b'<' | b'>') => {
                let n = if c == b')' {
                    usize::from(self.byte()?)
                } else {
                    self.len()?
                };
                let kind = if c == b')' { b'(' } else { c };
                self.emit(kind, &[&u32::try_from(n).ok()?.to_le_bytes()])?;
                for _ in 0..n {
                    self.value(depth + 1)?;
                }
            }
            b'{' => {
                self.emit(b'{', &[])?;
                while self.r.bytes.get(self.r.at) != Some(&b'0') {
                    self.value(depth + 1)?;
                    self.value(depth + 1)?;
                }
                self.r.at += 1;
                self.emit(b'0', &[])?;
            }
            _ => return None,
        }
        if let Some(slot) = slot {
            self.refs[slot] = Some((start, self.out.len()));
        }
        Some(())
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Per reference slot: the expanded size of a finished value, or `None`
    /// while it is still being read.
    refs: Vec<Option<u64>>,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AnswerError> {
        let start = self.at;
        let end = start
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(AnswerError::Truncated(start))?;
        self.at = end;
        Ok(&self.bytes[start..end])
    }

    fn byte(&mut self) -> Result<u8, AnswerError> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, AnswerError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length that the rest of the input can hold, at `per` bytes each.
    fn len(&mut self, per: usize) -> Result<usize, AnswerError> {
        let at = self.at;
        let n = usize::try_from(self.i32()?).map_err(|_| AnswerError::Length(at))?;
        if n.saturating_mul(per) > self.bytes.len() - self.at {
            return Err(AnswerError::Length(at));
        }
        Ok(n)
    }

    /// One value; returns how many values it stands for, expanded.
    fn value(&mut self, depth: usize) -> Result<u64, AnswerError> {
        if depth > MAX_DEPTH {
            return Err(AnswerError::Depth);
        }
        let at = self.at;
        let code = self.byte()?;
        let flagged = code & 0x80 != 0;
        let slot = flagged.then(|| {
            self.refs.push(None);
            self.refs.len() - 1
        });
        let nodes = match code & 0x7f {
            b'N' | b'F' | b'T' => 1,
            b'i' => {
                self.take(4)?;
                1
            }
            b'g' => {
                self.take(8)?;
                1
            }
            b'y' => {
                self.take(16)?;
                1
            }
            b'l' => {
                let n = self.i32()?.unsigned_abs() as usize;
                if n == 0 || n.saturating_mul(2) > self.bytes.len() - self.at {
                    return Err(AnswerError::Length(at));
                }
                let digits = self.take(n * 2)?;
                let digit = |i: usize| u16::from_le_bytes([digits[2 * i], digits[2 * i + 1]]);
                if (0..n).any(|i| digit(i) >= 1 << 15) || digit(n - 1) == 0 {
                    return Err(AnswerError::Integer(at));
                }
                1
            }
            b's' | b'u' | b't' => {
                let n = self.len(1)?;
                self.take(n)?;
                1
            }
            b'a' | b'A' => {
                let n = self.len(1)?;
                if !self.take(n)?.is_ascii() {
                    return Err(AnswerError::Ascii(at));
                }
                1
            }
            b'z' | b'Z' => {
                let n = self.byte()? as usize;
                if !self.take(n)?.is_ascii() {
                    return Err(AnswerError::Ascii(at));
                }
                1
            }
            b'r' => {
                if flagged {
                    return Err(AnswerError::Type { code, at });
                }
                let index = self.i32()? as u32;
                match self.refs.get(index as usize) {
                    Some(Some(nodes)) => *nodes,
                    _ => return Err(AnswerError::Reference { index, at }),
                }
            }
            b'(' | b'[' | b'<' | b'>' => {
                let n = self.len(1)?;
                self.items(n, depth)?
            }
            b')' => {
                let n = self.byte()? as usize;
                self.items(n, depth)?
            }
            b'{' => {
                let mut nodes = 1u64;
                loop {
                    if self.bytes.get(self.at) == Some(&b'0') {
                        self.at += 1;
                        break;
                    }
                    nodes = nodes.saturating_add(self.value(depth + 1)?);
                    nodes = nodes.saturating_add(self.value(depth + 1)?);
                    if nodes > MAX_NODES {
                        return Err(AnswerError::Size);
                    }
                }
                nodes
            }
            _ => return Err(AnswerError::Type { code, at }),
        };
        if let Some(slot) = slot {
            self.refs[slot] = Some(nodes);
        }
        Ok(nodes)
    }

    fn items(&mut self, n: usize, depth: usize) -> Result<u64, AnswerError> {
        let mut nodes = 1u64;
        for _ in 0..n {
            nodes = nodes.saturating_add(self.value(depth + 1)?);
            if nodes > MAX_NODES {
                return Err(AnswerError::Size);
            }
        }
        Ok(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What python3's `marshal.dumps` makes of an expression.
    fn dumps(expr: &str) -> Vec<u8> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                &format!("import sys,marshal;sys.stdout.buffer.write(marshal.dumps({expr}))"),
            ])
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{expr}: {:?}", out);
        out.stdout
    }

    #[test]
    fn plain_answers_pass() {
        for expr in [
            "('v', [1, -2, 2**100, -(2**70), 2.5, float('nan'), 1+2j, None, True, False])",
            "('v', {'a': (1, 2), 'b': {1, 2}, 'c': frozenset(), 'd': b'x', 'e': 'é\\u2603'})",
            "('i', [[0]*3]*3)",
            "('x', 'ValueError', 'bad', {'line': 3, 'traceback': []})",
            "('v', 'x' * 300)",
            "('o', 'Pair', 'Pair(1, 2)', True, 'c0')",
            "('t',)",
        ] {
            assert_eq!(check_marshal(&dumps(expr)), Ok(()), "{expr}");
        }
    }

    /// `canonical` of python3's marshal bytes of `expr`.
    fn form(expr: &str, cap: usize) -> Option<Vec<u8>> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(dumps(expr));
        canonical(&b64, cap)
    }

    #[test]
    fn forms_are_equal_only_for_equal_values() {
        let same = |a: &str, b: &str| {
            let (fa, fb) = (form(a, 1 << 20), form(b, 1 << 20));
            assert!(fa.is_some(), "{a}");
            fa == fb
        };
        // One string however marshal wrote it (interned, short, ASCII or
        // not), and shared references written out.
        assert!(same("'ab'", "''.join(['a', 'b'])"));
        assert!(same("'é' * 3", "''.join(['é'] * 3)"));
        assert!(same("(lambda t: [t, t])((1, 'x'))", "[(1, 'x'), (1, 'x')]"));
        assert!(same("{'k': [1.5, None]}", "dict(k=[1.5, None])"));
        assert!(same("2**100", "2**100"));
        // Equal in Python but written differently: left to the judge.
        for (a, b) in [
            ("1", "True"),
            ("1", "1.0"),
            ("0.0", "-0.0"),
            ("(1, 2)", "[1, 2]"),
            ("{1: 'a', 2: 'b'}", "{2: 'b', 1: 'a'}"),
            ("frozenset([1])", "{1}"),
            ("b'ab'", "'ab'"),
        ] {
            assert!(!same(a, b), "{a} and {b}");
        }
        // Not equal to itself, so never a form.
        for expr in ["float('nan')", "[1, complex(0, float('nan'))]"] {
            assert_eq!(form(expr, 1 << 20), None, "{expr}");
        }
        // A form past the cap, trailing bytes and non-data are refused.
        assert_eq!(form("'x' * 100", 50), None);
        assert_eq!(form("...", 1 << 20), None);
        let mut bytes = dumps("1");
        bytes.push(b'N');
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(canonical(&b64, 1 << 20), None);
        // Sharing that doubles at every level outgrows any cap.
        let chain = "(lambda f: f(f, 40))(lambda f, n: (0, 0) if n == 0 else (lambda t: (t, t))(f(f, n - 1)))";
        assert_eq!(form(chain, 1 << 20), None);
    }

    #[test]
    fn code_cycles_and_garbage_are_refused() {
        // A code object, Ellipsis and StopIteration are not data.
        for expr in [
            "('v', compile('1', 'x', 'eval'))",
            "('v', ...)",
            "('v', StopIteration)",
        ] {
            assert!(
                matches!(check_marshal(&dumps(expr)), Err(AnswerError::Type { .. })),
                "{expr}"
            );
        }
        // A list that holds itself: a reference to an unfinished value.
        let cyclic = dumps("(lambda l: (l.append(l), l)[1])([])");
        assert!(matches!(
            check_marshal(&cyclic),
            Err(AnswerError::Reference { .. })
        ));
        // Sharing that doubles at every level stands for 2^40 values.
        let chain = dumps(
            "(lambda f: f(f, 40))(lambda f, n: (0, 0) if n == 0 else (lambda t: (t, t))(f(f, n - 1)))",
        );
        assert_eq!(check_marshal(&chain), Err(AnswerError::Size));
        // Truncated, trailing, non-ASCII "ASCII", an unnormalised long.
        let ok = dumps("('v', 12345678901234567890)");
        assert!(check_marshal(&ok[..ok.len() - 1]).is_err());
        let mut trailing = ok.clone();
        trailing.push(b'N');
        assert_eq!(check_marshal(&trailing), Err(AnswerError::Trailing(1)));
        assert_eq!(check_marshal(b"z\x01\xff"), Err(AnswerError::Ascii(0)));
        assert_eq!(
            check_marshal(b"l\x01\x00\x00\x00\x00\x00"),
            Err(AnswerError::Integer(0))
        );
        assert!(matches!(
            check_marshal(b"[\xff\xff\xff\x7f"),
            Err(AnswerError::Length(1))
        ));
    }

    #[test]
    fn sanitise_nulls_what_is_not_data() {
        let good = base64::engine::general_purpose::STANDARD.encode(dumps("('v', 1)"));
        let bad = base64::engine::general_purpose::STANDARD.encode(dumps("('v', ...)"));
        let mut answers = vec![
            serde_json::json!(good),
            serde_json::json!(bad),
            serde_json::json!(["f", false, "", good]),
            serde_json::json!(7),
            serde_json::json!("not base64!"),
        ];
        sanitise(&mut answers);
        assert_eq!(answers[0], serde_json::json!(good));
        for a in &answers[1..] {
            assert_eq!(*a, serde_json::Value::Null);
        }
    }
}
