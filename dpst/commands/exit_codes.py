"""What ``dpst`` returns to the shell, one home for every command."""

EXIT_OK = 0
# Something was found wrong but the command ran to its end (dpst data check's problems, an
# exported model that does not match PyTorch, dpst targets with pairs that failed or manifest
# lines it skipped: the other pairs are done).
EXIT_PROBLEMS = 1
# The user gave something wrong (a DpstError): one line on stderr.
EXIT_USER_ERROR = 2
# Ctrl-C: what was done so far is written and marked interrupted (128 + SIGINT). Training
# returns it for SIGTERM and SIGHUP too; dpst stylize, targets, fast, look and video return
# 128 + the signal's number for those (143, 129: dpst.commands.signals).
EXIT_INTERRUPTED = 130
