"""The command lines, `skyplan` and `skyctl`: parse, call the core, render. Nothing more."""
