/* sigilctl — publish/unpublish volumes, inspect volume directories, manage
 * CAs.  main() only dispatches. */
#include <stdio.h>
#include <string.h>

#include "tools/sigilctl.h"
#include "util/log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sigilctl COMMAND [OPTIONS]\n"
		"\n"
		"commands:\n"
		"  ca init|status|rotate   CA sets: of a local state dir, or of a running sigil-ca\n"
		"  mint                    mint a TLS volume offline from a local CA state dir\n"
		"  inspect DIR             show what a volume directory holds\n"
		"  publish                 NodePublishVolume against a CSI socket, as the kubelet does\n"
		"  unpublish               NodeUnpublishVolume against a CSI socket\n"
		"  info                    plugin info, capabilities, readiness and node info\n"
		"\n"
		"Run 'sigilctl COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	sigil_log_init_from_env("sigilctl");
	if (argc < 2) {
		usage(stderr);
		return SIGILCTL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return SIGILCTL_EXIT_OK;
	}
	if (!strcmp(argv[1], "ca"))
		return sigilctl_cmd_ca(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mint"))
		return sigilctl_cmd_mint(argc - 1, argv + 1);
	if (!strcmp(argv[1], "inspect"))
		return sigilctl_cmd_inspect(argc - 1, argv + 1);
	if (!strcmp(argv[1], "publish"))
		return sigilctl_cmd_publish(argc - 1, argv + 1);
	if (!strcmp(argv[1], "unpublish"))
		return sigilctl_cmd_unpublish(argc - 1, argv + 1);
	if (!strcmp(argv[1], "info"))
		return sigilctl_cmd_info(argc - 1, argv + 1);
	fprintf(stderr, "sigilctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return SIGILCTL_EXIT_USAGE;
}
