"""lfkit.data: BIRD loading, the schema prompt builder, SFT rows and the Lahman demo corpus.

``lfkit.data.rows`` holds the one question type and the SFT / preference row builders,
``lfkit.data.bird`` reads BIRD-style corpora, ``lfkit.data.prompts`` owns the prompt format
(instruction, schema DDL, answer fence) for every stage, ``lfkit.data.sft`` writes alpaca
SFT rows, ``lfkit.data.lengths`` reports token lengths against a cutoff and
``lfkit.data.demo`` builds the embedded Lahman corpus (imports pandas lazily).
"""

from lfkit.data.bird import load_bird, resolve_db_path, split_db_root
from lfkit.data.prompts import INSTRUCTION, SchemaPromptBuilder, chat_messages, format_sql_answer
from lfkit.data.rows import Question, preference_row, question_key, sft_row

__all__ = [
    "INSTRUCTION",
    "Question",
    "SchemaPromptBuilder",
    "chat_messages",
    "format_sql_answer",
    "load_bird",
    "preference_row",
    "question_key",
    "resolve_db_path",
    "sft_row",
    "split_db_root",
]
