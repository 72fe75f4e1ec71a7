"""The Beam graph and its run: plan.py holds what the launcher decides before Beam starts (folders, work
units, partition counts) and where every stage's files live; runners.py creates the Beam runner; build.py
wires the stages into one Beam graph, scan.py its first stage (read, clean, filter, decontaminate, then stage
and sign each unit's documents); docstore.py and runs.py carry the staged documents and the bulk records from
one stage to the next, and progress.py draws one bar per stage; output.py owns the output folder (its lock,
the staging folder, the move into place, the clean-document files); stats.py accounts for every document,
report.py draws report.png and finish.py writes stats.json, report.png and, last, manifest.json."""
