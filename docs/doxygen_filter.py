#!/usr/bin/env python3
"""Doxygen input filter: read the public headers' plain C comments as docs.

The headers are written in plain /* */ comments, so that they read well as
C. Doxygen only reads /** */ blocks, so this filter, run on each header
(INPUT_FILTER in Doxyfile), rewrites comments without changing line numbers:

- the first comment of the file becomes the file's description (@file);
- a comment that starts its own line and is directly followed by code
  becomes the documentation of that code (/**);
- a comment that follows code on its line documents that code (/**<);
- a comment followed by a blank line, or the end of the file, stays a plain
  comment (a section note, a TODO).
"""
import re
import sys


def comments(text):
    """Yield (start, end) of every /* */ comment outside string literals."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            i = j + 1
        elif text.startswith('//', i):
            j = text.find('\n', i)
            i = n if j < 0 else j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            yield i, j
            i = j
        else:
            i += 1


def rewrite(text):
    out = []
    last = 0
    first = True
    for start, end in comments(text):
        body = text[start + 2:end - 2]
        if body.startswith(('*', '!')):
            continue  # already a Doxygen comment
        line_start = text.rfind('\n', 0, start) + 1
        leading = text[line_start:start].strip() == ''
        rest = text[end:].split('\n', 2)
        after = rest[0].strip()
        next_line = rest[1] if len(rest) > 1 else ''
        if first and leading:
            stripped = body.rstrip()
            new = '/**' + stripped + ' @file' + body[len(stripped):] + '*/'
        elif not leading:
            new = '/**<' + body + '*/'
        elif after == '' and next_line.strip() != '':
            new = '/**' + body + '*/'
        else:
            new = None
        first = False
        if new is not None:
            out.append(text[last:start])
            out.append(new)
            last = end
    out.append(text[last:])
    result = ''.join(out)
    assert result.count('\n') == text.count('\n')
    return result


if __name__ == '__main__':
    with open(sys.argv[1]) as f:
        sys.stdout.write(rewrite(f.read()))
