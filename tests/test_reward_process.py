"""Format and process rewards on hand-computed cases, as strings and as TRL chat messages."""

from __future__ import annotations

import doctest
import pickle

import pytest

import lfkit.reward.process as process_module
from lfkit.reward.process import (
    PROCESS_REWARDS,
    completion_text,
    format_reward,
    format_score,
    predicted_type,
    self_assessment_reward,
    sql_structure_reward,
    think_text,
    thinking_parts,
    thinking_reward,
    type_reward,
)

FRANCE_THINK = (
    "First, the question asks for singers from France.\n"
    "1. Table singer holds name and country.\n"
    "2. Filter country = 'France' because only French singers count.\n"
    "3. Then select name."
)
FRANCE_SQL = "SELECT name FROM singer WHERE country = 'France'"


def answer(sql: str, think: str | None = None) -> str:
    return (f"<think>\n{think}\n</think>\n\n" if think is not None else "") + f"<answer>\n{sql}\n</answer>"


def as_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_every_reward_is_named_as_registered_and_pickles() -> None:
    assert {name: fn.__name__ for name, fn in PROCESS_REWARDS.items()} == {n: n for n in PROCESS_REWARDS}
    for fn in PROCESS_REWARDS.values():  # multiprocess launchers may pickle reward functions
        assert pickle.loads(pickle.dumps(fn)) is fn


@pytest.mark.parametrize(
    ("text", "score"),
    [
        (answer(FRANCE_SQL, "plan"), 1.0),
        ("  <think>plan</think><answer>SELECT 1</answer>\n", 1.0),
        (answer(FRANCE_SQL), 0.5),  # no reasoning
        ("<think>plan</think><answer>SELECT 1</answer> trailing words", 0.5),
        ("<think>   </think><answer>SELECT 1</answer>", 0.5),  # empty reasoning
        ("<think>plan <answer>draft</answer></think><answer>SELECT 1</answer>", 0.0),  # two answers
        ("<think>plan</think>SELECT 1", 0.0),  # no <answer>
        ("<think>plan</think><answer>SELECT 1", 0.0),  # unclosed answer
        ("<answer> </answer>", 0.0),
        ("", 0.0),
    ],
)
def test_format_score(text: str, score: float) -> None:
    assert format_score(text) == score
    assert format_reward(None, [text]) == [score]
    assert format_reward(None, [as_messages(text)]) == [score]


def test_format_accepts_a_think_prefilled_by_the_prompt() -> None:
    completion = "plan</think>\n\n<answer>SELECT 1</answer>"
    assert format_reward(["<|im_start|>assistant\n<think>\n"], [completion]) == [1.0]
    assert format_reward([[{"role": "user", "content": "q"}]], [completion]) == [0.5]


def test_completion_text_and_think_text() -> None:
    msgs = [
        {"role": "system", "content": "ignored"},
        {"role": "assistant", "content": [{"type": "text", "text": "<think>a</think>"}, {"type": "text", "text": "b"}]},
    ]
    assert completion_text(msgs) == "<think>a</think>b"
    assert completion_text([{"role": "user", "content": "only user"}]) == "only user"
    assert completion_text(12) == ""
    assert think_text("<think>a</think> <think>b</think>") == "a"
    assert think_text("<think>never closed") is None


@pytest.mark.parametrize("wrap", [str, as_messages], ids=["string", "messages"])
def test_type_reward(wrap) -> None:
    two_joins = "SELECT a.x FROM a JOIN b ON a.i = b.i JOIN c ON b.i = c.i"
    completions = [
        wrap(answer(two_joins, "plan")),  # classified multi-step
        wrap(answer(FRANCE_SQL, "plan")),  # classified simple
        wrap("<type>多步推理</type>" + answer(FRANCE_SQL, "plan")),  # a declared label wins
        wrap("<type>unknown</type>" + answer(FRANCE_SQL, "plan")),  # an unknown label is ignored
        wrap(""),
        wrap(answer(FRANCE_SQL)),
    ]
    labels = ["多步推理", "multi-step", "多步推理", "sql", "sql", None]
    assert type_reward(None, completions, type=labels) == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert type_reward(None, completions) == [0.0] * 6  # no type column


def test_predicted_type() -> None:
    assert predicted_type("<answer>SELECT name FROM singer</answer>") == "sql"
    assert predicted_type("nothing") is None


def test_thinking_parts_by_hand() -> None:
    # 28 words -> 28/40; singer, name, country all named; first/because/then; three numbered lines
    assert thinking_parts(FRANCE_THINK, FRANCE_SQL) == {
        "length": 0.7,
        "coverage": 1.0,
        "connectives": 1.0,
        "structure": 1.0,
    }
    # 12 words (10 CJK characters + singer + age); singer and age of {singer, name, age}; 首先 然后
    parts = thinking_parts("首先确定表singer，然后按age筛选。", "SELECT name FROM singer WHERE age > 30")
    assert parts == pytest.approx({"length": 0.3, "coverage": 2 / 3, "connectives": 2 / 3, "structure": 0.0})
    # rambling: 600 words -> 1 - 200/400; 800 and more -> 0
    assert thinking_parts("word " * 600, "")["length"] == 0.5
    assert thinking_parts("word " * 900, "")["length"] == 0.0
    # "singers" does not name "singer"; unparsable SQL names nothing
    assert thinking_parts("singers", "SELECT name FROM singer")["coverage"] == 0.0
    assert thinking_parts("singer", "SELECT (")["coverage"] == 0.0


@pytest.mark.parametrize("wrap", [str, as_messages], ids=["string", "messages"])
def test_thinking_reward(wrap) -> None:
    completions = [
        wrap(answer(FRANCE_SQL, FRANCE_THINK)),
        wrap(answer("SELECT name FROM singer WHERE age > 30", "首先确定表singer，然后按age筛选。")),
        wrap(answer(FRANCE_SQL)),  # no think block
        wrap(answer(FRANCE_SQL, "  ")),
        wrap(""),
    ]
    got = thinking_reward(None, completions)
    assert got == pytest.approx([(0.7 + 3) / 4, (0.3 + 2 / 3 + 2 / 3) / 4, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("wrap", [str, as_messages], ids=["string", "messages"])
def test_self_assessment_reward(wrap) -> None:
    sql = "SELECT name FROM singer ORDER BY age"  # missing_where, order_by_without_limit
    completions = [
        wrap(answer(sql, "This has no WHERE and ORDER BY without LIMIT.")),  # both named: 2/2
        wrap(answer(sql, "Careful: missing_where.")),  # one of two: 1/2
        wrap(answer(sql, "missing where; missing GROUP BY")),  # {mw} / {mw, obwl, mgb}: 1/3
        wrap(answer(FRANCE_SQL, "Looks fine.")),  # nothing detected, nothing named
        wrap(answer(FRANCE_SQL, "缺少GROUP BY")),  # names an issue the SQL does not have
        wrap(answer(sql)),  # no reasoning to assess
        wrap("<think>missing where</think>"),  # no SQL
        wrap(""),
    ]
    assert self_assessment_reward(None, completions) == pytest.approx([1.0, 0.5, 1 / 3, 1.0, 0.0, 0.0, 0.0, 0.0])


def test_self_assessment_reads_the_question_column() -> None:
    c = answer("SELECT COUNT(*) FROM concert WHERE venue = 'Arena'", "缺少时间范围")
    assert self_assessment_reward(None, [c, c, c], question=["How many in 2020?", "How many?", None]) == [1.0, 0.0, 0.0]
    assert self_assessment_reward(None, [c], query=["今年有多少场？"]) == [1.0]  # the seed's column name


@pytest.mark.parametrize("wrap", [str, as_messages], ids=["string", "messages"])
def test_sql_structure_reward(wrap) -> None:
    completions = [
        wrap(answer(FRANCE_SQL, "x")),  # clean
        wrap(answer("SELECT name FROM singer ORDER BY age")),  # 1 - (0.3 + 0.2)
        wrap(answer("SELECT country, COUNT(*) FROM singer")),  # 1 - 0.35
        # missing_join_condition 0.45 + inconsistent_alias 0.25 + missing_group_by 0.35 + ORDER BY 0.2: capped
        wrap(answer("SELECT s.name, COUNT(*) FROM singer AS t JOIN concert AS c ORDER BY c.x")),
        wrap(answer("SELECT name FROM singer WHERE (age > 3")),  # unclosed parenthesis: invalid
        wrap(answer("SELECT name FROM singer WHERE")),  # does not parse
        wrap("<think>no answer</think>"),
        wrap(""),
    ]
    assert sql_structure_reward(None, completions) == pytest.approx([1.0, 0.5, 0.65, 0.0, 0.0, 0.0, 0.0, 0.0])
    timed = answer("SELECT COUNT(*) FROM concert WHERE venue = 'Arena'")
    assert sql_structure_reward(None, [timed, timed], question=["In 2020?", "Total?"]) == pytest.approx([0.6, 1.0])


def test_bad_input_scores_zero_everywhere() -> None:
    bad = ["", None, [], [{"role": "assistant", "content": None}], "I cannot answer that.", "<answer></answer>"]
    for name, fn in PROCESS_REWARDS.items():
        assert fn(None, bad, type=["sql"] * len(bad)) == [0.0] * len(bad), name


def test_extra_trl_columns_are_ignored() -> None:
    c = [answer(FRANCE_SQL, "plan")]
    extra = {"completion_ids": [[1, 2]], "trainer_state": object(), "db_path": ["x.sqlite"]}
    scores = {}
    for name, fn in PROCESS_REWARDS.items():
        plain = fn(["prompt"], c, type=["sql"])
        assert fn(["prompt"], c, type=["sql"], **extra) == plain, name  # same score with TRL's extra columns
        scores[name] = plain[0]
    assert scores["format"] == 1.0 and scores["sql_structure"] > 0  # real scores were compared, not zeros


def test_doctests() -> None:
    result = doctest.testmod(process_module)
    assert result.attempted >= 15 and result.failed == 0
