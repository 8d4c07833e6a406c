"""The one place that builds the Spark session.

Local runs use the Delta jars that ``scripts/setup.sh`` fetched once into ``.cache/jars`` (so every
later run works offline); cluster runs get them from ``spark-submit --packages`` or pre-installed
jars. Delta's SQL extension and catalog, UTC time zone and adaptive execution are always on.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from pyspark.sql import SparkSession

from profilehouse.config import PROJECT_ROOT, EnvironmentConfig
from profilehouse.errors import SetupError

JARS_DIR_ENV = "PROFILEHOUSE_JARS_DIR"
DEFAULT_JARS_DIR = PROJECT_ROOT / ".cache" / "jars"
SCALA_VERSION = "2.13"

ALWAYS_ON_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
}


def delta_maven_coordinates() -> list[str]:
    """Maven coordinates of the Delta jars matching the installed pyspark and delta-spark."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    delta_version = metadata.version("delta-spark")
    return [
        f"io.delta:delta-spark_{spark_minor}_{SCALA_VERSION}:{delta_version}",
        f"io.delta:delta-storage:{delta_version}",
    ]


def delta_jar_names() -> list[str]:
    """File names the Delta jars have once fetched (``artifact-version.jar``)."""
    return [f"{c.split(':')[1]}-{c.split(':')[2]}.jar" for c in delta_maven_coordinates()]


def local_delta_jars(jars_dir: str | Path | None = None) -> list[Path]:
    """Paths of the fetched Delta jars; raise SetupError naming what is missing and the fix."""
    base = Path(jars_dir or os.environ.get(JARS_DIR_ENV) or DEFAULT_JARS_DIR)
    wanted = [base / name for name in delta_jar_names()]
    missing = [p.name for p in wanted if not p.is_file()]
    if missing:
        present = sorted(p.name for p in base.glob("*.jar")) if base.is_dir() else []
        raise SetupError(
            f"Delta jars missing in {base}: {', '.join(missing)} "
            f"(present: {', '.join(present) or 'none'}). Run scripts/setup.sh once to fetch them."
        )
    return wanted


def spark_conf_for(env: EnvironmentConfig, jars_dir: str | Path | None = None) -> dict[str, str]:
    """The full Spark config a session for ``env`` is built with (env settings, then must-haves)."""
    conf = dict(env.spark_conf)
    conf.setdefault("spark.sql.warehouse.dir", f"{env.warehouse_uri.rstrip('/')}/_metastore")
    if env.delta_jars == "local":
        jars = [str(p) for p in local_delta_jars(jars_dir)]
        existing = [j for j in conf.get("spark.jars", "").split(",") if j]
        conf["spark.jars"] = ",".join(existing + jars)
    conf.update(ALWAYS_ON_CONF)
    return conf


def build_spark_session(
    env: EnvironmentConfig,
    app_name: str = "profilehouse",
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Build (or return the running) Spark session configured for ``env``.

    Settings that only take effect at JVM start (driver memory, jars) are passed at launch when
    this process starts the JVM; under ``spark-submit`` those come from its command line instead.
    """
    conf = spark_conf_for(env)
    conf.update(extra_conf or {})
    builder = SparkSession.builder.appName(app_name)
    if env.master:
        builder = builder.master(env.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("PROFILEHOUSE_SPARK_LOG_LEVEL", "WARN"))
    return spark
