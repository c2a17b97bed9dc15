/* sigilctl: the operator's CLI.  Each sub-command lives in its own file. */
#pragma once

int sigilctl_cmd_ca(int argc, char **argv);
int sigilctl_cmd_mint(int argc, char **argv);
int sigilctl_cmd_inspect(int argc, char **argv);
int sigilctl_cmd_publish(int argc, char **argv);
int sigilctl_cmd_unpublish(int argc, char **argv);
int sigilctl_cmd_info(int argc, char **argv);

/* Exit codes */
#define SIGILCTL_EXIT_OK 0
#define SIGILCTL_EXIT_FAIL 1
#define SIGILCTL_EXIT_USAGE 2
