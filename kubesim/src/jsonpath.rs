//! The subset of JSONPath used by printer columns and scale paths:
//! `.a.b`, `[N]`, `[*]`, `['key']`, and `[?(@.field=="value")]` filters.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
    All,
    Filter(Vec<String>, String),
}

fn parse(path: &str) -> Option<Vec<Seg>> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut segs = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                if j > start {
                    segs.push(Seg::Field(p[start..j].to_string()));
                }
                i = j;
            }
            b'[' => {
                let close = find_close(p, i)?;
                let inner = p[i + 1..close].trim();
                segs.push(if inner == "*" {
                    Seg::All
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                    let (lhs, rhs) = f.split_once("==")?;
                    let field: Vec<String> = lhs
                        .trim()
                        .trim_start_matches('@')
                        .trim_start_matches('.')
                        .split('.')
                        .map(str::to_string)
                        .collect();
                    Seg::Filter(
                        field,
                        rhs.trim().trim_matches('"').trim_matches('\'').to_string(),
                    )
                } else if inner.starts_with('\'') || inner.starts_with('"') {
                    Seg::Field(inner.trim_matches('\'').trim_matches('"').to_string())
                } else {
                    Seg::Index(inner.parse().ok()?)
                });
                i = close + 1;
            }
            _ => {
                // A bare leading name (`status.phase`) is accepted like `.status.phase`.
                let start = i;
                let mut j = i;
                while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                    j += 1;
                }
                segs.push(Seg::Field(p[start..j].to_string()));
                i = j;
            }
        }
    }
    Some(segs)
}

fn find_close(p: &str, open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in p[open..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => return Some(open + i),
            _ => {}
        }
    }
    None
}

/// All values the path selects, in document order.
pub fn eval<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(segs) = parse(path) else {
        return Vec::new();
    };
    let mut cur = vec![v];
    for seg in &segs {
        let mut next = Vec::new();
        for c in cur {
            match seg {
                Seg::Field(f) => next.extend(c.get(f.as_str())),
                Seg::Index(i) => next.extend(c.get(*i)),
                Seg::All => match c {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Seg::Filter(field, want) => {
                    for item in c.as_array().into_iter().flatten() {
                        let mut x = Some(item);
                        for f in field {
                            x = x.and_then(|x| x.get(f.as_str()));
                        }
                        let matches = match x {
                            Some(Value::String(s)) => s == want,
                            Some(other) => {
                                serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other)
                            }
                            None => false,
                        };
                        if matches {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

pub fn first<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    eval(v, path).into_iter().next()
}

/// Sets a simple dotted path (`.spec.replicas`), creating intermediate objects.
pub fn set(v: &mut Value, path: &str, value: Value) {
    let Some(segs) = parse(path) else { return };
    let mut cur = v;
    for (i, seg) in segs.iter().enumerate() {
        let Seg::Field(f) = seg else { return };
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let m = cur.as_object_mut().expect("made an object above");
        if i == segs.len() - 1 {
            m.insert(f.clone(), value);
            return;
        }
        cur = m
            .entry(f.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_printer_column_paths() {
        let v = json!({"status": {"conditions": [{"type": "Other", "status": "x"}, {"type": "Ready", "status": "True"}]},
                       "spec": {"containers": [{"image": "a"}]}});
        assert_eq!(
            first(&v, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(first(&v, ".spec.containers[0].image"), Some(&json!("a")));
        assert_eq!(first(&v, ".spec.missing"), None);
        let mut w = json!({});
        set(&mut w, ".spec.replicas", json!(3));
        assert_eq!(w, json!({"spec": {"replicas": 3}}));
    }
}
