"""Bringing a DataFrame's rows to the driver as plain tuples, through Arrow.

DataFrame.collect() builds a pyspark Row per record from pickled data: in a micro-batch of a few
thousand events that took about half of the driver's time. toArrow() ships the same values as Arrow
columns, which pyarrow turns into Python values in C. The values are those collect() gives (int,
str, bytes, lists, None), but for structs: Arrow makes a dict, collect() a Row; here both become
tuples of the fields in order, which is how the job reads them."""
import pyarrow as pa
from pyspark.sql import DataFrame


def _has_struct(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return True
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _has_struct(t.value_type)


def _struct_to_tuple(value):
    if isinstance(value, dict):
        return tuple(_struct_to_tuple(v) for v in value.values())
    if isinstance(value, list):
        return [_struct_to_tuple(v) for v in value]
    return value


def collect_tuples(df: DataFrame) -> list:
    """The rows of `df` as tuples, columns in order."""
    table = df.toArrow()
    columns = []
    for field, column in zip(table.schema, table.columns):
        values = column.to_pylist()
        if _has_struct(field.type):
            values = [_struct_to_tuple(v) for v in values]
        columns.append(values)
    return list(zip(*columns)) if columns else []
