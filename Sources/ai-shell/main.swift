import AIShellCLI
import BackupModel

MallocTuning.apply()
AIShell.runMain()
