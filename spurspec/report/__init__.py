"""`spurspec report`: combine evaluated runs into report.md, a self-contained report.html and
PNG figures. Entry point: `spurspec.report.build.build_report(ReportConfig(...))`."""
