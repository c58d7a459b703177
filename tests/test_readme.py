"""The README's set-up and test commands are the ones CI runs, and the environment file installs the same."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README starts with a bash block holding the two commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_commands():
    setup, test = _readme_commands()
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [setup, test]


def test_environment_yml_installs_the_same_as_pip():
    setup, _ = _readme_commands()
    extra = re.search(r'-e "(\.\[[a-z,]+\])"', setup).group(1)
    assert f'-e "{extra}"' in (ROOT / "environment.yml").read_text()
