#!/usr/bin/env python3
# addlayers.py IN.tar OUT.tar NAME LAYER... - a multi-layer OCI image for `ctr images import`, made from the
# one-layer image ../shared/containerd/mkimage.py writes (static busybox + /hello.txt): its layer stays the
# bottom one, and each LAYER (a word) adds one uncompressed layer on top holding /layers/LAYER.txt (its text
# is the word), so images that list the same words in the same order share those layers (the same chain ids)
# and images that differ anywhere have different snapshots from there up. NAME is the new image's name.
# Prints OUT.tar, then one `layer sha256:…` line per layer, bottom first. No network needed.
import hashlib, io, json, sys, tarfile

src, out, name, words = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
sha = lambda b: 'sha256:' + hashlib.sha256(b).hexdigest()

blobs = {}
with tarfile.open(src) as t:
    for m in t.getmembers():
        if m.isfile():
            blobs[m.name] = t.extractfile(m).read()
index = json.loads(blobs['index.json'])
man = json.loads(blobs['blobs/sha256/' + index['manifests'][0]['digest'][7:]])
cfg = json.loads(blobs['blobs/sha256/' + man['config']['digest'][7:]])
layers = [blobs['blobs/sha256/' + l['digest'][7:]] for l in man['layers']]

def add(t, path, data=None, mode=0o644, typ=tarfile.REGTYPE):
    ti = tarfile.TarInfo(path); ti.mode = mode; ti.type = typ; ti.mtime = 0
    if data is not None: ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if data is not None else None)

for w in words:
    lb = io.BytesIO()
    with tarfile.open(fileobj=lb, mode='w', format=tarfile.PAX_FORMAT) as t:
        add(t, 'layers', mode=0o755, typ=tarfile.DIRTYPE)
        add(t, 'layers/%s.txt' % w, (w + '\n').encode())
    layers.append(lb.getvalue())

cfg['rootfs']['diff_ids'] = [sha(l) for l in layers]
cfgb = json.dumps(cfg).encode()
man['config'] = {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': sha(cfgb), 'size': len(cfgb)}
man['layers'] = [{'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': sha(l), 'size': len(l)} for l in layers]
manb = json.dumps(man).encode()
idx = json.dumps({'schemaVersion': 2, 'manifests': [{'mediaType': 'application/vnd.oci.image.manifest.v1+json',
    'digest': sha(manb), 'size': len(manb), 'platform': {'architecture': 'amd64', 'os': 'linux'},
    'annotations': {'org.opencontainers.image.ref.name': name, 'io.containerd.image.name': name}}]}).encode()
with tarfile.open(out, 'w') as t:
    add(t, 'oci-layout', b'{"imageLayoutVersion":"1.0.0"}')
    add(t, 'index.json', idx)
    add(t, 'blobs', mode=0o755, typ=tarfile.DIRTYPE); add(t, 'blobs/sha256', mode=0o755, typ=tarfile.DIRTYPE)
    for b in layers + [cfgb, manb]: add(t, 'blobs/sha256/' + sha(b)[7:], b)
print(out)
for l in layers: print('layer', sha(l))
