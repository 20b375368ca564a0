/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VIGIL_CONSOLE_VIGILCTL_PKI_H
#define VIGIL_CONSOLE_VIGILCTL_PKI_H

/*
 * "vigilctl pki": create the CA, issue console (server) and defender
 * (client) certificates, show a certificate.  argv[0] is "pki", argv[1] the
 * subcommand; options are parsed with getopt_long, which is reset here, so
 * the caller may have used getopt before.  Messages go to stdout (what was
 * written) and stderr (why not).  Returns the process exit status: 0 done,
 * 1 failed, 2 bad usage.
 */
int vigilctl_pki_main(int argc, char **argv);

#endif
