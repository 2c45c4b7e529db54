import re
from pathlib import Path

from ganforge.cli.main import train
from ganforge.cli.settings_docs import (
    END,
    FAMILIES_END,
    FAMILIES_START,
    START,
    model_families_table,
    readme_block,
    train_options_table,
    with_table,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def train_section(text: str) -> str:
    start = text.index("### `ganforge train`")
    return text[start:text.index("\n### ", start + 1)]


def test_readme_train_table_is_the_one_generated_from_the_settings():
    assert readme_block(README.read_text(encoding="utf-8")) == train_options_table(), (
        "README's train option table differs from the settings in src/ganforge/config/__init__.py; regenerate it with "
        "`python -m ganforge.cli.settings_docs README.md`")


def test_every_flag_of_train_help_is_documented_in_readme():
    section = train_section(README.read_text(encoding="utf-8"))
    flags = [flag for param in train.params for flag in (*param.opts, *param.secondary_opts)]
    missing = [flag for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", section)]
    assert len(flags) > 60 and not missing, f"README's `ganforge train` section lacks {missing}"


def test_regenerating_replaces_only_the_block_between_the_markers():
    text = f"before\n{START}\nstale | table\n{END}\nmiddle\n{FAMILIES_START}\n{FAMILIES_END}\nafter\n"
    assert with_table(text) == (f"before\n{START}\n{train_options_table()}\n{END}\nmiddle\n{FAMILIES_START}\n"
                                f"{model_families_table()}\n{FAMILIES_END}\nafter\n")
    assert readme_block(with_table(text)) == train_options_table()


def test_table_shows_flags_defaults_and_the_resume_rule():
    rows = {row.split(" | ")[0].strip("| `"): row for row in train_options_table().splitlines()[2:]}
    assert "| 64 | fixed |" in rows["--g-width"] and "| 2e-4 | may change |" in rows["--lr-g"]
    assert "| on | fixed |" in rows["--d-batchnorm/--no-d-batchnorm"]
    assert "| embedded MNIST | may change |" in rows["--data"]  # on resume: the same store, wherever it is now
    assert r"--gp-mode two-sided\|one-sided" in rows and "| `two-sided` |" in rows[r"--gp-mode two-sided\|one-sided"]


def test_readme_model_table_is_the_one_generated_from_the_families():
    assert readme_block(README.read_text(encoding="utf-8"), FAMILIES_START, FAMILIES_END) == model_families_table(), (
        "README's model-family table differs from the families' declarations; regenerate it with "
        "`python -m ganforge.cli.settings_docs README.md`")
