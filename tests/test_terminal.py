"""Issue 12 item 4: the first README command on a real terminal (a pseudo-terminal).

stdout and stderr share one pty, as in a terminal window; the bytes the
program writes are replayed through a small terminal model (cursor moves,
erase-line, carriage return) to get the lines a person finally sees.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
from PIL import Image

from photos import texture

# each test runs the grmpiqa command in a subprocess: seconds to a minute apiece
pytestmark = pytest.mark.slow

_CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen_lines(text: str) -> list[str]:
    """What a terminal shows after ``text``: handles CR, LF, cursor up/down, erase line."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(text):
        match = _CSI.match(text, i)
        if match:
            args, op = match.group(1), match.group(2)
            count = int(args) if args.isdigit() else 1
            if op == "A":
                row = max(0, row - count)
            elif op == "B":
                row += count
            elif op == "G":
                col = count - 1
            elif op == "K":
                line = lines[row]
                if args in ("2", "1"):
                    lines[row] = [" "] * len(line) if args == "1" else []
                else:
                    del line[col:]
            i = match.end()
            continue
        ch = text[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
        elif ch == "\x1b" or ord(ch) < 32:
            continue
        else:
            line = lines[row]
            line.extend(" " * (col - len(line) + 1) if len(line) <= col else "")
            line[col] = ch
            col += 1
        while len(lines) <= row:
            lines.append([])
    return ["".join(line).rstrip() for line in lines]


def run_in_pty(args: list[str], env: dict[str, str], cwd, columns: int = 120, *,
               interrupt_after: bytes = b"") -> tuple[str, int]:
    """Everything the command wrote to a terminal, and its exit code; with
    ``interrupt_after``, a SIGINT (what Ctrl-C sends) once those bytes have been written."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            close_fds=True)
    os.close(slave)
    raw, sent = b"", False
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        raw += data
        if interrupt_after and not sent and interrupt_after in raw:
            proc.send_signal(signal.SIGINT)
            sent = True
    os.close(master)
    code = proc.wait(timeout=300)
    assert sent or not interrupt_after, "the run ended before it could be interrupted"
    return raw.decode("utf-8", "replace"), code


def test_table_and_progress_share_a_terminal_cleanly(tiny_hub, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    # decoded first and slowly (about a second), so the rate is measured over real time
    ramp = np.linspace(0, 255, 5000, dtype=np.float32)
    slow = np.stack([np.outer(np.ones(5000), ramp)] * 3, -1).astype(np.uint8)
    Image.fromarray(slow).save(photos / "000_slow.png", compress_level=1)
    names = ["000_slow.png"]
    for i in range(5):
        Image.fromarray(texture(i)).save(photos / f"{573 + i}.JPG", "JPEG")
        names.append(f"{573 + i}.JPG")
    (photos / "574b.jpg").write_bytes(b"not a photo")
    names.insert(3, "574b.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", GRMPIQA_MANIFEST=str(tiny_hub.manifest_path))
    raw, code = run_in_pty([sys.executable, "-m", "grmpiqa", "score", "./photos", "-b", "1",
                            "-j", "0"], env, tmp_path)
    assert code == 1, raw
    shown = screen_lines(raw)

    # the model load is a visible step
    assert "loading model" in raw
    assert any(re.fullmatch(r"grmpiqa: loaded model \S+ in [0-9.]+ s", s) for s in shown), shown
    # every row is a line of its own: never glued to the bar, never erased by it
    assert "   score  path" in shown
    for name in names:
        row = [s for s in shown if s.endswith(f"photos/{name}") or f"photos/{name}  [error" in s]
        assert len(row) == 1, (name, shown)
        assert re.match(r"^(0\.\d{6}|       -)  \./photos/", row[0]), row[0]
    assert not [s for s in shown if "scoring" in s and "photos/" in s], shown
    assert not [s for s in shown if "━" in s], "the bar is left on the screen"
    # the table shows the error in its row: it is not printed a second time
    assert len([s for s in shown if "574b.jpg" in s]) == 1, shown
    assert shown.index("   score  path") > min(i for i, s in enumerate(shown)
                                              if s.startswith("grmpiqa: loaded model"))
    # the rate is photos over the time since scoring began
    (done,) = [s for s in shown if s.startswith("grmpiqa: scoring done:")]
    count, seconds, rate = re.fullmatch(
        r"grmpiqa: scoring done: (\d+) in ([0-9.]+) s \(([0-9.]+) img/s\)", done).groups()
    assert int(count) == len(names)
    assert abs(float(rate) - int(count) / float(seconds)) <= 0.05 * float(rate) + 0.1
    shown_rates = [float(r) for r in re.findall(r"([0-9.]+) img/s", raw)]
    assert max(shown_rates) <= float(rate) * 1.05 + 0.1, shown_rates  # no burst nonsense
    assert shown[-2:] == ["grmpiqa: 1 of 7 files could not be scored", ""] or \
        shown[-1] == "grmpiqa: 1 of 7 files could not be scored", shown


def test_cull_prints_a_table_below_a_cleared_bar(tiny_hub, tmp_path):
    """Issue 24 item 7: on a terminal cull's rows are a table like score's, each on a line
    of its own (never on the bar's), and the bar is gone at the end."""
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for i in range(5):
        Image.fromarray(texture(i)).save(shoot / f"{1000 + i}.jpg", "JPEG")
    (shoot / "1005.jpg").write_bytes(b"not a photo")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", GRMPIQA_MANIFEST=str(tiny_hub.manifest_path))
    raw, code = run_in_pty([sys.executable, "-m", "grmpiqa", "cull", "./shoot", "--below",
                            "0.99", "--copy-to", "rejects", "-b", "1", "-j", "0"],
                           env, tmp_path)
    assert code == 1, raw  # the unreadable photo
    shown = screen_lines(raw)
    assert "culling" in raw  # there was a bar
    assert not [s for s in shown if "━" in s], shown
    assert not [s for s in shown if "culling" in s and "shoot/" in s], shown
    header = shown.index("action    score  photo")
    rows = [s for s in shown if "./shoot/" in s]
    assert len(rows) == 6, shown
    for row in rows:
        assert shown.index(row) > header
        assert "," not in row, row  # a table, not CSV
        assert re.match(r"^(copy   0\.\d{6}  \./shoot/10\d\d\.jpg -> rejects/10\d\d\.jpg"
                        r"  \(below 0\.99\)|skip          -  \./shoot/1005\.jpg  \[error: .+\])$",
                        row), row
    # the error is in its row; it is not printed a second time
    assert len([s for s in shown if "1005.jpg" in s]) == 1, shown
    (done,) = [i for i, s in enumerate(shown) if s.startswith("grmpiqa: culling done:")]
    assert done > max(shown.index(r) for r in rows)
    assert any(s.startswith("grmpiqa: copied 5 of 6 photos") for s in shown[done:]), shown


def test_a_ctrl_c_while_the_bar_is_put_back_arrives_after_it():
    # rich's bar interrupted halfway through start() cannot be stopped again (IndexError)
    from grmpiqa.cli.progress import _ctrl_c_held

    reached = []
    with pytest.raises(KeyboardInterrupt), _ctrl_c_held():
        signal.raise_signal(signal.SIGINT)
        reached.append("the rest of the block")
    assert reached == ["the rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
