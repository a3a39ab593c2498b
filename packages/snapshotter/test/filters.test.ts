// containerd's filter syntax as List receives it: selectors, operators, quoting, AND within a filter, OR across.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileFilters, type FilterFields } from '../src/index.js';

const snaps: FilterFields[] = [
  { kind: 'committed', name: 'p', parent: '', labels: { 'containerd.io/gc.root': 'x' } },
  { kind: 'active', name: 'a b/c', parent: 'p', labels: { l: '1', 'dotted.key': 'v' } },
  { kind: 'view', name: 'v', parent: 'p', labels: {} },
];
const names = (...f: string[]) => snaps.filter(compileFilters(f)).map((s) => s.name);

test('no filter, or only empty ones, matches everything', () => {
  assert.equal(names(), ['p', 'a b/c', 'v']);
  assert.equal(names('', '  '), ['p', 'a b/c', 'v']);
});

test('operators, presence, quoting, AND and OR', () => {
  assert.equal(names('kind==active'), ['a b/c']);
  assert.equal(names('kind!=active'), ['p', 'v']);
  assert.equal(names('parent!=""'), ['a b/c', 'v']);
  assert.equal(names('parent==""'), ['p']);
  assert.equal(names('name=="a b/c"'), ['a b/c']);
  assert.equal(names('labels."containerd.io/gc.root"'), ['p']);
  assert.equal(names('labels."containerd.io/gc.root"==x'), ['p']);
  assert.equal(names('labels."dotted.key"==v'), ['a b/c']);
  assert.equal(names('labels.l!=2'), ['p', 'a b/c', 'v'], '!= matches where the label is absent');
  assert.equal(names('labels.l==1,kind==active'), ['a b/c']);
  assert.equal(names('labels.l==1,kind==view'), []);
  assert.equal(names('kind==view', 'name==p'), ['p', 'v']);
  assert.equal(names('name~=^a'), ['a b/c']);
  assert.equal(names('name~="^(p|v)$"'), ['p', 'v']);
  assert.equal(names('name~=/^v$/'), ['v']);
  assert.equal(names('  kind  ==  view  '), ['v']);
  assert.equal(names('unknown'), []);
  assert.equal(names('labels'), [], 'labels without a key is no field');
  assert.equal(names('name=="a\\x20b/c"'), ['a b/c'], 'escapes in quoted strings');
});

test('malformed filters are ERR_SNAPSHOT_INVALID', () => {
  for (const f of ['kind=active', 'kind==', '==x', 'labels."open', 'kind==a b', 'name~=(', ',kind==view', 'kind==view,', 'a.', 'name=="\\x4"']) {
    assert.throws(() => compileFilters([f]), (e: { code?: string }) => e.code === 'ERR_SNAPSHOT_INVALID', f);
  }
});

test.run();
