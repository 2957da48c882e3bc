"""Where tests go per language, and refusing paths outside the workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lspilot.actions import testfiles
from lspilot.actions.testfiles import (
    UnusableTestFile,
    check_test_file,
    choose_test_file,
    wrap_rust_tests,
)
from lspilot.workspace import OutsideWorkspace, ensure_inside

# Imported under another name so that pytest does not try to collect it as a test class.
Target = testfiles.TestTarget


def test_python_with_tests_dir(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    source = tmp_path / "pkg" / "geometry.py"
    assert choose_test_file(source, "python", tmp_path) == Target(
        tmp_path / "tests" / "test_geometry.py"
    )


def test_python_without_tests_dir(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "geometry.py"
    assert choose_test_file(source, "python", tmp_path) == Target(
        tmp_path / "pkg" / "test_geometry.py"
    )


def test_python_tests_file_not_dir_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "tests").write_text("not a folder")
    source = tmp_path / "geometry.py"
    assert choose_test_file(source, "python", tmp_path).path == tmp_path / "test_geometry.py"


def test_python_by_suffix_when_language_unknown(tmp_path: Path) -> None:
    source = tmp_path / "a.py"
    assert choose_test_file(source, "plaintext", tmp_path).path == tmp_path / "test_a.py"


@pytest.mark.parametrize(
    ("name", "language", "test_name"),
    [
        ("util.js", "javascript", "util.test.js"),
        ("util.ts", "typescript", "util.test.ts"),
        ("Button.tsx", "typescriptreact", "Button.test.tsx"),
        ("Button.jsx", "javascriptreact", "Button.test.jsx"),
        ("util.mjs", "javascript", "util.test.mjs"),
        ("server.go", "go", "server_test.go"),
        ("Widget.cs", "csharp", "WidgetTests.cs"),
        ("lib.c", "c", "lib_test.c"),
        ("script.lua", "lua", "script_test.lua"),
    ],
)
def test_same_folder_conventions(tmp_path: Path, name: str, language: str,
                                 test_name: str) -> None:
    source = tmp_path / "src" / name
    target = choose_test_file(source, language, tmp_path)
    assert target == Target(tmp_path / "src" / test_name, same_file=False)


def test_rust_tests_go_in_the_same_file(tmp_path: Path) -> None:
    source = tmp_path / "src" / "lib.rs"
    assert choose_test_file(source, "rust", tmp_path) == Target(source, same_file=True)


def test_java_mirrors_src_main_java(tmp_path: Path) -> None:
    source = tmp_path / "src" / "main" / "java" / "com" / "acme" / "Parser.java"
    assert choose_test_file(source, "java", tmp_path) == Target(
        tmp_path / "src" / "test" / "java" / "com" / "acme" / "ParserTest.java"
    )


def test_java_in_a_maven_module(tmp_path: Path) -> None:
    source = tmp_path / "core" / "src" / "main" / "java" / "Parser.java"
    assert choose_test_file(source, "java", tmp_path).path == (
        tmp_path / "core" / "src" / "test" / "java" / "ParserTest.java"
    )


def test_java_outside_maven_layout(tmp_path: Path) -> None:
    source = tmp_path / "Parser.java"
    assert choose_test_file(source, "java", tmp_path).path == tmp_path / "ParserTest.java"


def test_ruby_spec_or_test(tmp_path: Path) -> None:
    source = tmp_path / "lib" / "thing.rb"
    assert choose_test_file(source, "ruby", tmp_path).path == tmp_path / "test" / "test_thing.rb"
    (tmp_path / "spec").mkdir()
    assert choose_test_file(source, "ruby", tmp_path).path == tmp_path / "spec" / "thing_spec.rb"


def test_is_dir_is_injectable(tmp_path: Path) -> None:
    target = choose_test_file(tmp_path / "m.py", "python", tmp_path, is_dir=lambda p: True)
    assert target.path == tmp_path / "tests" / "test_m.py"


# -- ensure_inside -------------------------------------------------------------------------


def test_inside_path_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    path = root / "tests" / "test_new.py"  # need not exist yet
    assert ensure_inside(path, root) == Path(os.path.realpath(path))


def test_dotdot_leaving_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    with pytest.raises(OutsideWorkspace, match="outside the workspace"):
        ensure_inside(root / ".." / "elsewhere" / "test_x.py", root)
    with pytest.raises(OutsideWorkspace):
        ensure_inside(root / "a" / ".." / ".." / "test_x.py", root)


def test_dotdot_staying_inside_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "a").mkdir(parents=True)
    assert ensure_inside(root / "a" / ".." / "test_x.py", root) == (
        Path(os.path.realpath(root)) / "test_x.py"
    )


def test_sibling_with_common_prefix_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "ws-other").mkdir()
    with pytest.raises(OutsideWorkspace):
        ensure_inside(tmp_path / "ws-other" / "test_x.py", root)


def test_symlinked_file_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    outside = tmp_path / "outside.py"
    outside.write_text("")
    (root / "test_x.py").symlink_to(outside)
    with pytest.raises(OutsideWorkspace):
        ensure_inside(root / "test_x.py", root)


def test_symlinked_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "tests").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutsideWorkspace):
        ensure_inside(root / "tests" / "test_new.py", root)


def test_dangling_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "test_x.py").symlink_to(tmp_path / "not-yet.py")
    with pytest.raises(OutsideWorkspace):
        ensure_inside(root / "test_x.py", root)


def test_symlinked_root_is_fine(tmp_path: Path) -> None:
    real_root = tmp_path / "real"
    real_root.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real_root, target_is_directory=True)
    assert ensure_inside(link / "test_x.py", link) == real_root.resolve() / "test_x.py"


def test_symlink_inside_pointing_inside_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert ensure_inside(root / "alias" / "t.py", root) == (root / "real" / "t.py").resolve()


# -- rust ----------------------------------------------------------------------------------


def test_wrap_rust_tests_in_a_cfg_test_module() -> None:
    code = "#[test]\nfn adds() {\n    assert_eq!(add(1, 2), 3);\n}\n"
    assert wrap_rust_tests(code) == (
        "#[cfg(test)]\nmod tests {\n    use super::*;\n\n"
        "    #[test]\n    fn adds() {\n        assert_eq!(add(1, 2), 3);\n    }\n}\n"
    )


def test_rust_tests_already_in_a_module_are_kept() -> None:
    code = "#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n"
    assert wrap_rust_tests(code) == code


# -- properties ----------------------------------------------------------------------------

SEGMENT = st.text(alphabet="abcxyz_-.", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
LANGUAGES = st.sampled_from(["python", "javascript", "typescript", "go", "rust", "java", "ruby",
                             "csharp", "php", "lua", "plaintext", ""])
SUFFIXES = st.sampled_from([".py", ".js", ".ts", ".go", ".rs", ".java", ".rb", ".cs", ".php",
                            ".lua", ".txt", ""])


@settings(max_examples=300, deadline=None)
@given(folders=st.lists(SEGMENT, max_size=5), stem=SEGMENT, suffix=SUFFIXES,
       language=LANGUAGES, has_tests=st.booleans(), has_spec=st.booleans())
def test_any_source_inside_the_root_gets_a_test_file_inside_it(
    folders, stem, suffix, language, has_tests, has_spec
):
    root = Path("/work/project")
    source = root.joinpath(*folders, stem + suffix)
    existing = {root / "tests"} if has_tests else set()
    if has_spec:
        existing.add(root / "spec")
    target = choose_test_file(source, language, root, is_dir=lambda p: p in existing)
    assert root in target.path.parents
    assert target.same_file == (target.path == source)
    if not target.same_file:
        assert target.path.name != source.name


@settings(max_examples=200, deadline=None)
@given(ups=st.integers(1, 4), folders=st.lists(SEGMENT, max_size=3), name=SEGMENT)
def test_any_path_climbing_out_of_the_root_is_refused(tmp_path_factory, ups, folders, name):
    root = tmp_path_factory.mktemp("root")
    escaping = root.joinpath(*([".."] * ups), *folders, name)
    if root.resolve() in escaping.resolve().parents:
        return  # climbed out and back in: not an escape
    with pytest.raises(OutsideWorkspace):
        ensure_inside(escaping, root)


# -- check_test_file ------------------------------------------------------------------------
def test_a_missing_or_utf8_test_file_is_usable(tmp_path: Path) -> None:
    check_test_file(tmp_path / "test_missing.py")
    (tmp_path / "test_ok.py").write_text("# café\n", encoding="utf-8")
    check_test_file(tmp_path / "test_ok.py")


def test_a_folder_a_fifo_or_latin1_test_file_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "test_dir.py").mkdir()
    os.mkfifo(tmp_path / "test_fifo.py")  # opened without blocking: no writer, no hang
    (tmp_path / "test_latin.py").write_bytes(b"# caf\xe9\n")
    for name, expected in (("test_dir.py", "is a folder"),
                           ("test_fifo.py", "is not a regular file"),
                           ("test_latin.py", "is not UTF-8 text")):
        with pytest.raises(UnusableTestFile, match=expected) as caught:
            check_test_file(tmp_path / name)
        assert str(tmp_path / name) in str(caught.value) and caught.value.hint
