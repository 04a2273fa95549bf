#!/bin/bash
#SBATCH --job-name=reslab-{experiment}
#SBATCH --chdir={workdir}
#SBATCH --output={log}{directives}

# Made by reslab {version}: the study's tables, charts and report.html, once the array has ended.
{exe} {args}
