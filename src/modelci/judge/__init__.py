"""Pure verdicts shared by the features: gate rules, paired statistics, distribution distances,
task metrics and Markdown defusing. No IO beyond reading a gate file; imports only the core."""
