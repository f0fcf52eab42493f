"""What a finished study is turned into: the lab-style table, the report (plots, table,
summary), the exported best parameters, the confirmation of its winner over fresh seeds, and
the dashboard on its storage. These read studies through Optuna; they never print."""
