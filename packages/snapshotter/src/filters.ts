/**
 * containerd's filter syntax, as List (Walk) receives it. A request carries several filters, any of which may
 * match (OR); a filter is selectors separated by `,`, all of which must match (AND). A selector is a field path
 * (fields separated by `.`; a field is `[A-Za-z0-9_]+` or a double-quoted string), then optionally an operator
 * (`==`, `!=`, `~=` for a regular expression) and a value (a quoted string, or a run of characters up to `,`
 * or white space). A bare field path matches when the field is present. White space between tokens is ignored.
 *
 * Fields of a snapshot: `kind` (active, view, committed), `name`, `parent` (present even when empty), and
 * `labels.<key>` (present when the label is set). `!=` matches an absent field; `==` and `~=` need it present.
 */
import { ThinjournalError } from '@thinjournal/spec';

export interface FilterFields {
  readonly kind: string;
  readonly name: string;
  readonly parent: string;
  readonly labels: Readonly<Record<string, string>>;
}

type Op = 'present' | '==' | '!=' | '~=';
interface Selector { readonly path: readonly string[]; readonly op: Op; readonly value: string; readonly re: RegExp | null }

function bad(filter: string, at: number, why: string): ThinjournalError {
  return new ThinjournalError('ERR_SNAPSHOT_INVALID', `filter ${JSON.stringify(filter)} at ${at}: ${why}`, { filter });
}

class Scanner {
  i = 0;
  constructor(readonly text: string) {}
  skipSpace(): void {
    while (this.i < this.text.length && /\s/.test(this.text[this.i]!)) this.i++;
  }
  peek(): string | undefined {
    this.skipSpace();
    return this.text[this.i];
  }
  /** A double-quoted string with backslash escapes (\" \\ \n \t \r and \xHH, \uHHHH). */
  quoted(): string {
    const start = this.i;
    const open = this.text[this.i]!;
    this.i++;
    let out = '';
    while (this.i < this.text.length) {
      const c = this.text[this.i++]!;
      if (c === open) return out;
      if (c !== '\\') { out += c; continue; }
      const e = this.text[this.i++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'x': case 'u': {
          const n = e === 'x' ? 2 : 4;
          const hex = this.text.slice(this.i, this.i + n);
          if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw bad(this.text, this.i, `bad \\${e} escape`);
          out += String.fromCharCode(parseInt(hex, 16));
          this.i += n;
          break;
        }
        case undefined: throw bad(this.text, start, 'unterminated quoted string');
        default: out += e;
      }
    }
    throw bad(this.text, start, 'unterminated quoted string');
  }
  field(): string {
    const c = this.peek();
    if (c === '"') return this.quoted();
    const m = /^[A-Za-z0-9_]+/.exec(this.text.slice(this.i));
    if (!m) throw bad(this.text, this.i, c === undefined ? 'expected a field, found the end' : `expected a field, found ${JSON.stringify(c)}`);
    this.i += m[0].length;
    return m[0];
  }
  value(op: Op): string {
    const c = this.peek();
    if (c === '"' || (op === '~=' && (c === '/' || c === '|'))) return this.quoted();
    const m = /^[^,\s]+/.exec(this.text.slice(this.i));
    if (!m) throw bad(this.text, this.i, 'expected a value');
    this.i += m[0].length;
    return m[0];
  }
}

function parseFilter(text: string): Selector[] {
  const s = new Scanner(text);
  const out: Selector[] = [];
  for (;;) {
    const path = [s.field()];
    while (s.peek() === '.') { s.i++; path.push(s.field()); }
    const c = s.peek();
    let op: Op = 'present';
    let value = '';
    let re: RegExp | null = null;
    if (c !== ',' && c !== undefined) {
      const two = s.text.slice(s.i, s.i + 2);
      if (two !== '==' && two !== '!=' && two !== '~=') throw bad(text, s.i, `expected an operator (==, !=, ~=) or ",", found ${JSON.stringify(c)}`);
      op = two;
      s.i += 2;
      value = s.value(op);
      if (op === '~=') {
        try { re = new RegExp(value); } catch (e) { throw bad(text, s.i, `bad regular expression: ${(e as Error).message}`); }
      }
    }
    out.push({ path, op, value, re });
    const next = s.peek();
    if (next === undefined) return out;
    if (next !== ',') throw bad(text, s.i, `unexpected ${JSON.stringify(next)}`);
    s.i++;
  }
}

function field(f: FilterFields, path: readonly string[]): string | undefined {
  switch (path[0]) {
    case 'kind': return path.length === 1 ? f.kind : undefined;
    case 'name': return path.length === 1 ? f.name : undefined;
    case 'parent': return path.length === 1 ? f.parent : undefined;
    case 'labels': {
      if (path.length < 2) return undefined;
      const key = path.slice(1).join('.');
      return Object.hasOwn(f.labels, key) ? f.labels[key] : undefined;
    }
    default: return undefined;
  }
}

function matches(sel: Selector, f: FilterFields): boolean {
  const v = field(f, sel.path);
  switch (sel.op) {
    case 'present': return v !== undefined;
    case '==': return v !== undefined && v === sel.value;
    case '!=': return v !== sel.value;
    case '~=': return v !== undefined && sel.re!.test(v);
  }
}

/**
 * A predicate for the filters of one List call: true when no filter is given, or when any filter has all its
 * selectors matching. A malformed filter is ERR_SNAPSHOT_INVALID (INVALID_ARGUMENT over gRPC).
 */
export function compileFilters(filters: readonly string[]): (f: FilterFields) => boolean {
  const parsed = filters.filter((t) => t.trim() !== '').map(parseFilter);
  if (parsed.length === 0) return () => true;
  return (f) => parsed.some((sels) => sels.every((s) => matches(s, f)));
}
