"""pydantic types for values a PostgreSQL column can hold. Template-owned.

A request's model refuses what its column cannot store, with a 422 that names the
field, before the database sees it: `name: ColumnText`, `id: BigIntValue`. The
limits reach the OpenAPI document too (minimum, maximum, pattern), so clients and
fuzzers know them. What slips through anyway answers 422 too (web/errors.py), but
without the field's name.

Add your own limits beside them: `Annotated[ColumnText, Field(max_length=200)]`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# PostgreSQL's integer types: smallint, integer, bigint (and bigint identity keys).
SmallIntValue = Annotated[int, Field(ge=-(2**15), le=2**15 - 1)]
IntegerValue = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
BigIntValue = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]

# text and varchar hold any character but NUL (U+0000). A pattern also makes pydantic
# refuse lone surrogates (JSON's "\ud800"), which UTF-8 cannot encode: a plain str takes them.
NO_NUL_PATTERN = r"^[^\x00]*$"
ColumnText = Annotated[str, Field(pattern=NO_NUL_PATTERN)]
