//! A bounded pre-scan of a pickle, run before candle's reader builds any object from it.
//!
//! candle's `pickle::Stack` builds the object tree without limits: a pickle that nests 300,000
//! lists (600 KB) makes the tree's recursive drop overflow the stack (SIGABRT), `BINGET` clones a
//! memoised object each time (exponential memory from a few KB), and `BINUNICODE` allocates the
//! declared length before reading. This scan walks the same opcodes iteratively, tracking only
//! the nesting depth and an estimate of the memory each stack entry would take, and refuses the
//! pickle at the first opcode that would exceed a limit. Wherever the scan cannot follow the
//! stream (unknown opcode, stack underflow, missing memo entry, end of data) candle's reader
//! fails at the same opcode, so the scan stops there and leaves the error to it.

use std::collections::HashMap;

/// Deepest object nesting accepted. A PyTorch state_dict nests about 6 levels (dict → tensor
/// reduce → args tuple → persistent id → storage tuple); a training checkpoint about 10.
pub(crate) const MAX_DEPTH: u32 = 256;

/// Most memory (estimated bytes, memo clones included) the objects may take.
pub(crate) const MAX_COST: u64 = 256 << 20;

/// Estimated bytes of one `Object` node (the enum is 56 bytes, plus vector slack).
const NODE: u64 = 64;

/// Longest `LONG1` accepted: candle shifts each byte into an i64.
const MAX_LONG_BYTES: u8 = 8;

#[derive(Clone, Copy)]
struct Entry {
    depth: u32,
    cost: u64,
    mark: bool,
}

impl Entry {
    fn leaf(extra: u64) -> Self {
        Self { depth: 1, cost: NODE + extra, mark: false }
    }
    fn parent_of(children: &[Entry]) -> Self {
        let depth = 1 + children.iter().map(|c| c.depth).max().unwrap_or(0);
        let cost = NODE + children.iter().map(|c| c.cost).sum::<u64>();
        Self { depth, cost, mark: false }
    }
}

/// Why a pickle was refused.
#[derive(Debug)]
pub(crate) struct Refused {
    pub offset: usize,
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {} of the pickle)", self.reason, self.offset)
    }
}

struct Scan<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Entry>,
    memo: HashMap<u32, Entry>,
    /// Estimated bytes allocated so far (never decreases: conservative).
    spent: u64,
}

/// `None` means "candle's reader fails here": the scan stops without refusing.
type Step<T> = std::result::Result<Option<T>, Refused>;

impl<'a> Scan<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A line up to `\n` (or the end, as `read_until` does); returns its length.
    fn line(&mut self) -> usize {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        self.pos += n;
        n
    }
    fn pop(&mut self) -> Option<Entry> {
        self.stack.pop()
    }
    fn pop_to_mark(&mut self) -> Option<Vec<Entry>> {
        let idx = self.stack.iter().rposition(|e| e.mark)?;
        let objs = self.stack.split_off(idx + 1);
        self.stack.pop();
        Some(objs)
    }
    fn refuse(&self, op_at: usize, reason: String) -> Refused {
        Refused { offset: op_at, reason }
    }
    /// Accounts for a new or cloned object and checks both limits.
    fn charge(&mut self, op_at: usize, e: Entry, cloned: bool) -> Result<Entry, Refused> {
        if e.depth > MAX_DEPTH {
            return Err(self.refuse(op_at, format!("objects nest deeper than {MAX_DEPTH} levels (a PyTorch checkpoint needs about 10)")));
        }
        self.spent = self.spent.saturating_add(if cloned { e.cost } else { NODE });
        if self.spent > MAX_COST || e.cost > MAX_COST {
            return Err(self.refuse(op_at, format!("the objects would take more than {} MiB", MAX_COST >> 20)));
        }
        Ok(e)
    }
    fn push_new(&mut self, op_at: usize, e: Entry) -> Result<(), Refused> {
        let e = self.charge(op_at, e, false)?;
        self.stack.push(e);
        Ok(())
    }
    /// Adds `children` to the container on top of the stack (APPEND, SETITEM, …).
    fn extend_last(&mut self, op_at: usize, children: &[Entry]) -> Step<()> {
        let Some(last) = self.stack.last().copied() else { return Ok(None) };
        let depth = children.iter().map(|c| c.depth + 1).fold(last.depth, u32::max);
        let cost = last.cost + children.iter().map(|c| c.cost).sum::<u64>();
        let e = self.charge(op_at, Entry { depth, cost, mark: false }, false)?;
        if let Some(top) = self.stack.last_mut() {
            *top = e;
        }
        Ok(Some(()))
    }

    /// One opcode; `Some(true)` at STOP.
    fn op(&mut self) -> Step<bool> {
        let at = self.pos;
        let Some(code) = self.u8() else { return Ok(None) };
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => return Ok(None),
                }
            };
        }
        match code {
            0x80 => drop(need!(self.take(1))),
            b'c' => {
                let n = self.line() + self.line();
                self.push_new(at, Entry::leaf(n as u64))?;
            }
            b'K' => {
                need!(self.take(1));
                self.push_new(at, Entry::leaf(0))?;
            }
            b'M' => {
                need!(self.take(2));
                self.push_new(at, Entry::leaf(0))?;
            }
            b'J' => {
                need!(self.take(4));
                self.push_new(at, Entry::leaf(0))?;
            }
            b'G' => {
                need!(self.take(8));
                self.push_new(at, Entry::leaf(0))?;
            }
            b'X' => {
                let len = need!(self.u32()) as usize;
                if len > self.data.len() - self.pos {
                    return Err(self.refuse(at, format!("a string of {len} bytes runs past the end of the pickle")));
                }
                self.pos += len;
                self.push_new(at, Entry::leaf(len as u64))?;
            }
            0x8a => {
                let n = need!(self.u8());
                if n > MAX_LONG_BYTES {
                    return Err(self.refuse(at, format!("an integer of {n} bytes (at most {MAX_LONG_BYTES} supported)")));
                }
                need!(self.take(n as usize));
                self.push_new(at, Entry::leaf(0))?;
            }
            0x88 | 0x89 | b'N' | b'}' | b'd' | b')' | b']' => self.push_new(at, Entry::leaf(0))?,
            b'(' => self.push_new(at, Entry { mark: true, ..Entry::leaf(0) })?,
            b'Q' => {
                let id = need!(self.pop());
                self.push_new(at, Entry::parent_of(&[id]))?;
            }
            b't' => {
                let objs = need!(self.pop_to_mark());
                self.push_new(at, Entry::parent_of(&objs))?;
            }
            0x85..=0x87 => {
                let n = (code - 0x84) as usize;
                if self.stack.len() < n {
                    return Ok(None);
                }
                let objs = self.stack.split_off(self.stack.len() - n);
                self.push_new(at, Entry::parent_of(&objs))?;
            }
            // REDUCE, BUILD, NEWOBJ: two operands into one object.
            b'R' | b'b' | 0x81 => {
                let a = need!(self.pop());
                let b = need!(self.pop());
                self.push_new(at, Entry::parent_of(&[b, a]))?;
            }
            b'a' => {
                let v = need!(self.pop());
                need!(self.extend_last(at, &[v])?);
            }
            b's' => {
                let v = need!(self.pop());
                let k = need!(self.pop());
                need!(self.extend_last(at, &[k, v])?);
            }
            b'e' | b'u' => {
                let objs = need!(self.pop_to_mark());
                need!(self.extend_last(at, &objs)?);
            }
            b'h' | b'j' => {
                let id = if code == b'h' { need!(self.u8()) as u32 } else { need!(self.u32()) };
                let e = *need!(self.memo.get(&id));
                let e = self.charge(at, e, true)?;
                self.stack.push(e);
            }
            b'q' | b'r' => {
                let id = if code == b'q' { need!(self.u8()) as u32 } else { need!(self.u32()) };
                let e = *need!(self.stack.last());
                let e = self.charge(at, e, true)?;
                self.memo.insert(id, e);
            }
            b'.' => return Ok(Some(true)),
            _ => return Ok(None),
        }
        Ok(Some(false))
    }
}

/// Scans `data` (a whole `data.pkl`) and refuses it if building its objects would nest deeper
/// than [`MAX_DEPTH`] or take more than [`MAX_COST`] bytes. `Ok` does not mean the pickle is
/// well formed, only that candle's reader can be run on it safely.
pub(crate) fn check(data: &[u8]) -> Result<(), Refused> {
    let mut scan = Scan { data, pos: 0, stack: Vec::new(), memo: HashMap::new(), spent: 0 };
    loop {
        match scan.op()? {
            Some(false) => {}
            Some(true) | None => return Ok(()),
        }
    }
}
