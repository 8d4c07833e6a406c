"""Customer profile lakehouse (客户画像) on PySpark + Delta Lake.

The shared plumbing lives in one module each: :mod:`profilehouse.session` (Spark session),
:mod:`profilehouse.config` (typed YAML config), :mod:`profilehouse.catalog` (table names and
locations) and :mod:`profilehouse.delta_io` (reads, writes, MERGEs). Stage logic lives in
sub-packages split by concern (``generator``, later ``ingest``, ``identity`` ...).
"""

__version__ = "0.1.0"
