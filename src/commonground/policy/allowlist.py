"""What SQL may contain at all. Default deny: a function or construct not listed is refused."""

from __future__ import annotations

from sqlglot import exp

# Scalar functions by sqlglot class name. Nothing here reads files, the network or settings.
SCALAR_FUNCTIONS = frozenset({
    "Abs", "Round", "Floor", "Ceil", "Sqrt", "Ln", "Log", "Exp", "Pow", "Sign",
    "Greatest", "Least", "Coalesce", "Nullif", "If", "Case", "Cast", "TryCast",
    "Lower", "Upper", "Length", "Substring", "Trim", "Concat", "ConcatWs", "Left", "Right",
    "Replace", "Lpad", "Rpad", "StartsWith", "Contains", "StrPosition",
    "DateTrunc", "TimestampTrunc", "Extract", "Year", "Month", "Day", "Quarter", "Week",
    "DayOfWeek", "DayOfYear", "DateDiff", "DateAdd", "DateSub", "CurrentDate", "TsOrDsToDate",
    "StrToDate", "StrToTime", "TimeToStr", "Date", "Mod", "IntDiv", "SafeDivide",
})

# Aggregates that summarise many values into one.
SUMMARY_AGGREGATES = frozenset({
    "Count", "CountIf", "Sum", "Avg", "Stddev", "StddevPop", "StddevSamp",
    "Variance", "VariancePop", "ApproxDistinct",
})
# Aggregates that return one of the input values: a person's value can come out verbatim.
PICKING_AGGREGATES = frozenset({"Min", "Max", "Median", "PercentileCont", "PercentileDisc", "Quantile", "Mode"})
# Aggregates that return input values wholesale or from an arbitrary row: row-level leaks.
ROW_AGGREGATES = frozenset({"ArrayAgg", "GroupConcat", "AnyValue", "First", "Last", "ArrayUniqueAgg", "Histogram"})

AGGREGATES = SUMMARY_AGGREGATES | PICKING_AGGREGATES | ROW_AGGREGATES

# Functions sqlglot does not model, by lower-case name.
ANONYMOUS_FUNCTIONS = frozenset({"date_part", "datepart", "strftime", "make_date", "regexp_replace", "list"})

# Constructs refused in every query, whatever the tables.
FORBIDDEN_NODES: tuple[tuple[type[exp.Expression], str], ...] = tuple(
    (cls, label) for cls, label in (
        (getattr(exp, "Lateral", None), "LATERAL"),
        (getattr(exp, "Unnest", None), "UNNEST"),
        (getattr(exp, "Pivot", None), "PIVOT/UNPIVOT"),
        (getattr(exp, "Into", None), "SELECT INTO"),
        (getattr(exp, "Placeholder", None), "parameters"),
        (getattr(exp, "Parameter", None), "parameters"),
        (getattr(exp, "SessionParameter", None), "session parameters"),
        (getattr(exp, "Lambda", None), "lambda functions"),
        (getattr(exp, "Lock", None), "FOR UPDATE"),
    ) if cls is not None
)


def function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


# Operators sqlglot models as functions: AND, OR, XOR, EXISTS (its subquery is checked as a scope).
OPERATORS: tuple[type[exp.Expression], ...] = (exp.Connector, exp.Exists)


def is_allowed_function(node: exp.Func) -> bool:
    if isinstance(node, OPERATORS):
        return True
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower() in ANONYMOUS_FUNCTIONS
    name = type(node).__name__
    return name in SCALAR_FUNCTIONS or name in AGGREGATES


def is_aggregate(node: exp.Expression) -> bool:
    return type(node).__name__ in AGGREGATES or (
        isinstance(node, exp.Anonymous) and str(node.name).lower() == "list"
    )
