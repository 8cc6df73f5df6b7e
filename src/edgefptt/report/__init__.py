"""The HTML report: our measurements and models beside the seed paper's published figures."""

from edgefptt.report.build import SECTIONS, build_report, report_settings

__all__ = ["SECTIONS", "build_report", "report_settings"]
