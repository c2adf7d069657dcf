"""The report stage: one self-contained ``report.html`` (and ``report.md``) with
the study's tables, figures and findings beside the reference study's numbers
(``build``: sections and writing; ``inputs``: what is read; ``findings``:
sentences computed from the numbers; ``figures``: training curves; ``render``:
the Jinja2 templates). Tables come from the stages' own table functions
(:mod:`dualasr.tables`); the reference study's numbers from :mod:`dualasr.reference`.
"""

from dualasr.report.build import Report, build_report

__all__ = ["Report", "build_report"]
