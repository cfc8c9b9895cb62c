import AIShellCLI

AIShell.runMain()
