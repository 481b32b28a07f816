"""What several CLI test files share: a spec with two schema problems, and the issue lines of stderr."""

BROKEN = """\
pyramidgraph: 1
inputs:
  C3: {level: 3, channels: 8}
  C4: {level: 4, channels: 8}
defaults: {channels: 8}
nodes:
  P4: {from: [C4], post: [bnn]}
  P3: {from: [C3, P4x], levl: 3}
outputs: [P3, P4]
"""


def issue_lines(err: str) -> list[str]:
    """The ``file:line:col: path: message`` lines of stderr, without the quoted YAML lines and carets under them (indented)."""
    return [line for line in err.splitlines() if not line.startswith(" ")]
