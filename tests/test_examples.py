"""The debugging example script runs and prints a loss close to ln V."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_debug_example_runs():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "debug_gpt.py")], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "blocks.1.ffn.sublayer.fc2.weight" in result.stdout
    loss_line = result.stdout.strip().splitlines()[-1]
    loss, ln_v = float(loss_line.split()[1]), float(loss_line.split("=")[1].rstrip(")"))
    assert abs(loss - ln_v) < 0.2 * ln_v


def test_readme_figure_script_writes_a_png(tmp_path):
    out = tmp_path / "reverse.png"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "readme_figure.py"), str(out)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
