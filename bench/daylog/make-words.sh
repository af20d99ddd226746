#!/usr/bin/env bash
# Rebuilds words.txt, the generator's vocabulary, from SCOWL (Debian package `scowl`).
# Not needed to generate data: words.txt is committed. Kept to show where the words come from.
#
# Order matters: generate.sh gives the word at rank r the Zipf weight 1/(r+2.7)^s, so the list
# starts with the most frequent English word forms (written here by hand), then the rest of
# SCOWL's most common level (10, ~4,000 words), shorter words first with some noise, because in
# real prose frequency falls with length. That makes the text compress like prose.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scowl=/usr/share/dict/scowl
[[ -r $scowl/english-words.10 ]] || { echo "install the Debian package scowl first" >&2; exit 1; }

head_words="the I and to a of was it in that my is for on with me but had so at have be this
not just we it's he she they you all out up then were about today what been some time there
her his like one if when as day from an get got really more much went back no by or did felt
would do can don't I'm going still how work after know could think good now home their little
night well them because morning only also first too over into again very which bit long two
our even things something us little while before through never people last always feel
thought didn't maybe off around new will same made make way should each those down right
tomorrow week tired happy friends coffee can't I've that's wasn't other any here where most
than these who him your next finally around enough better lot sure tonight yesterday"

{
    cat <<'EOF'
# Vocabulary for bench/daylog/generate.sh, most frequent first (see make-words.sh).
# Derived from SCOWL level 10 (Debian package scowl), which carries this notice:
#   Copyright 2000-2011 by Kevin Atkinson
#   Permission to use, copy, modify, distribute and sell these word lists, the associated
#   scripts, the output created from the scripts, and its documentation for any purpose is
#   hereby granted without fee, provided that the above copyright notice appears in all copies
#   and that both that copyright notice and this permission notice appear in supporting
#   documentation. Kevin Atkinson makes no representations about the suitability of this
#   array for any purpose. It is provided "as is" without express or implied warranty.
EOF
    # shellcheck disable=SC2086 # one argument per word, on purpose
    python3 - "$scowl" $head_words <<'PY'
import hashlib, sys
scowl, head = sys.argv[1], sys.argv[2:]
EXCLUDE = {"sex"}  # reads oddly in random demo sentences
seen, out = set(), []
for w in head:
    if w.lower() not in seen:
        seen.add(w.lower()); out.append(w)
rest = set()
for f in ("english-words.10", "american-words.10"):
    for line in open(f"{scowl}/{f}", encoding="utf-8"):
        w = line.strip()
        if w.isascii() and w.isalpha() and w.islower() and w not in seen and w not in EXCLUDE:
            rest.add(w)
def key(w):
    h = int(hashlib.md5(w.encode()).hexdigest(), 16)
    return (len(w) + (h % 5), h)
out += sorted(rest, key=key)
print("\n".join(out))
PY
} >"$here/words.txt"
echo "wrote $(grep -vc '^#' "$here/words.txt") words to $here/words.txt"
