#!/usr/bin/env python3
"""Doxygen input filter: read the public headers' plain C comments as docs.

The headers are written in plain /* */ comments, so that they read well as
C. Doxygen only reads /** */ blocks, so this filter, run on each header
(FILTER_PATTERNS in Doxyfile), rewrites comments without changing line numbers:

- the first comment of the file becomes the file's description (@file);
- a comment that starts its own line and is directly followed by code
  becomes the documentation of that code (/**); when that code, up to the
  next blank line, declares several macros or fields (a block of defaults,
  a pointer and its length), the comment documents each of them (a Doxygen
  member group, DISTRIBUTE_GROUP_DOC). Functions are never grouped: each
  public call needs its own comment;
- a comment that follows code on its line documents that code (/**<);
- a "Caveats:" comment standing alone joins the file's description;
- any other comment followed by a blank line, or the end of the file, stays
  a plain comment (a section note, a TODO).
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


def file_doc(body):
    """A comment made part of the file's description."""
    stripped = body.rstrip()
    return '/**' + stripped + ' @file' + body[len(stripped):] + '*/'


DEFINE = re.compile(r'^\s*#\s*define\b', re.M)
BLOCK_END = re.compile(r'\n[ \t]*(\n|/\*|\})')


def declaration_block(text, pos):
    """Start of the line after the code that follows pos, up to a blank
    line, a comment or a closing brace, if that code declares more than one
    thing; else None."""
    end = BLOCK_END.search(text, pos)
    if end is None:
        return None
    stop = end.start() + 1
    block = text[pos:stop]
    if '{' in block or '}' in block or 'RAFT_API' in block:
        return None
    if block.count(';') < 2 and len(DEFINE.findall(block)) < 2:
        return None
    return stop


def file_doc(body):
    """A comment made part of the file's description."""
    stripped = body.rstrip()
    return '/**' + stripped + ' @file' + body[len(stripped):] + '*/'


def rewrite(text):
    edits = []  # (start, end, replacement), applied in order at the end
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
        new = None
        if first and leading:
            new = file_doc(body)
        elif leading and body.lstrip(' *\n').startswith('Caveats:'):
            new = file_doc(body.replace('Caveats:', '@par Caveats', 1))
        elif not leading:
            new = '/**<' + body + '*/'
        elif after == '' and next_line.strip() != '':
            new = '/**' + body + '*/'
            stop = declaration_block(text, end)
            if stop is not None:
                # The group closes at the start of the next line: after a
                # #define the marker would become part of the macro.
                new = '/**@{*/' + new
                edits.append((stop, stop, '/**@}*/'))
        first = False
        if new is not None:
            edits.append((start, end, new))
    out = []
    last = 0
    for start, end, new in sorted(edits):
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
