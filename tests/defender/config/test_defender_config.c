/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "config/defender_config.h"
#include "log.h"

static void fails(const char *text, const char *want)
{
	struct defender_config cfg;
	vigil_err err = {0};

	cr_expect_lt(defender_config_parse(text, strlen(text), "d.conf", &cfg, &err), 0);
	cr_expect(strstr(err.msg, want) != NULL, "expected '%s' in '%s'", want, err.msg);
}

#define BASE "console = tls+tcp://127.0.0.1:7443\nca = /c\ncert = /h.crt\nkey = /h.key\n"

Test(defender_config, reads_every_setting)
{
	const char *text =
	    BASE "console = tls+tcp://[::1]:7443\nlabel = env=prod\nlabel = rack=a=b\n"
		 "state_dir = /s\nheartbeat_interval_ms = 250\nlog_level = debug\n"
		 "server_name = console.example\n";
	struct defender_config cfg;
	vigil_err err = {0};

	cr_assert_eq(defender_config_parse(text, strlen(text), "d.conf", &cfg, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(cfg.nconsoles, 2);
	cr_expect_str_eq(cfg.consoles[1], "tls+tcp://[::1]:7443");
	cr_expect_str_eq(cfg.ca, "/c");
	cr_expect_str_eq(cfg.cert, "/h.crt");
	cr_expect_str_eq(cfg.key, "/h.key");
	cr_expect_eq(cfg.nlabels, 2);
	cr_expect_str_eq(cfg.labels[1].key, "rack");
	cr_expect_str_eq(cfg.labels[1].value, "a=b");
	cr_expect_str_eq(cfg.state_dir, "/s");
	cr_expect_eq(cfg.heartbeat_interval_ms, 250);
	cr_expect_eq(cfg.log_level, LOG_LVL_DEBUG);
	cr_expect_str_eq(cfg.server_name, "console.example");
	defender_config_fini(&cfg);
}

Test(defender_config, defaults_state_dir_and_interval)
{
	struct defender_config cfg;
	vigil_err err = {0};

	cr_assert_eq(defender_config_parse(BASE, strlen(BASE), "d.conf", &cfg, &err), 0);
	cr_expect_str_eq(cfg.state_dir, "/var/lib/vigil/defender");
	cr_expect_eq(cfg.heartbeat_interval_ms, 1000);
	cr_expect_eq(cfg.send_window, DEFENDER_SEND_WINDOW_DEFAULT);
	cr_expect_str_eq(cfg.bpf_pin_dir, "/sys/fs/bpf/vigil");
	cr_expect(cfg.copy_open_args, "opens' paths are copied at entry unless turned off");
	defender_config_fini(&cfg);
}

Test(defender_config, copy_open_args_can_be_turned_off)
{
	const char *text = BASE "copy_open_args = false\n";
	struct defender_config cfg;
	vigil_err err = {0};

	cr_assert_eq(defender_config_parse(text, strlen(text), "d.conf", &cfg, &err), 0, "%s",
		     err.msg);
	cr_expect_not(cfg.copy_open_args);
	defender_config_fini(&cfg);
}

Test(defender_config, bpf_pin_dir)
{
	const char *none = BASE "bpf_pin_dir = none\n", *own = BASE "bpf_pin_dir = /sys/fs/bpf/x\n";
	struct defender_config cfg;
	vigil_err err = {0};

	cr_assert_eq(defender_config_parse(none, strlen(none), "d.conf", &cfg, &err), 0, "%s",
		     err.msg);
	cr_expect_null(cfg.bpf_pin_dir, "none turns pinning off");
	defender_config_fini(&cfg);
	cr_assert_eq(defender_config_parse(own, strlen(own), "d.conf", &cfg, &err), 0, "%s",
		     err.msg);
	cr_expect_str_eq(cfg.bpf_pin_dir, "/sys/fs/bpf/x");
	defender_config_fini(&cfg);
	fails(BASE "bpf_pin_dir = vigil\n",
	      "d.conf:5: bpf_pin_dir must be an absolute path or none");
	fails(BASE "bpf_pin_dir = none\nbpf_pin_dir = /x\n", "d.conf:6: 'bpf_pin_dir' given twice");
	fails(BASE "bpf_pin_dir = /x\nbpf_pin_dir = none\n", "d.conf:6: 'bpf_pin_dir' given twice");
}

Test(defender_config, send_window)
{
	const char *text = BASE "send_window = 1\n";
	struct defender_config cfg;
	vigil_err err = {0};

	cr_assert_eq(defender_config_parse(text, strlen(text), "d.conf", &cfg, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(cfg.send_window, 1);
	defender_config_fini(&cfg);
	fails(BASE "send_window = 0\n", "d.conf:5: 'send_window' must be an integer from 1 to 16");
	fails(BASE "send_window = 17\n", "from 1 to 16");
}

Test(defender_config, names_what_is_wrong)
{
	fails(BASE "colsole = x\n", "d.conf:5: unknown key 'colsole'");
	fails("ca = /c\ncert = /h\nkey = /k\n", "no 'console'");
	fails("console = tcp://a:1\n", "must be a tls+tcp:// URL");
	fails("console = tls+tcp://a:1\ncert = /h\nkey = /k\n", "'ca', 'cert' and 'key'");
	fails(BASE "ca = /other\n", "d.conf:5: 'ca' given twice");
	fails(BASE "label = noequals\n", "must be key=value");
	fails(BASE "label = a=1\nlabel = a=2\n", "label 'a' given twice");
	fails(BASE "heartbeat_interval_ms = 10\n", "from 100 to 600000");
	fails(BASE "heartbeat_interval_ms = 1s\n", "must be an integer");
	fails(BASE "log_level = loud\n", "log_level must be");
}

Test(defender_config, metrics_listen_is_off_unless_given_and_an_address_literal)
{
	const char *v4 = BASE "metrics_listen = 127.0.0.1:9464\n";
	const char *v6 = BASE "metrics_listen = [::1]:9465\n";
	struct defender_config cfg;
	vigil_err err = {0};

	cr_assert_eq(defender_config_parse(BASE, strlen(BASE), "d.conf", &cfg, &err), 0);
	cr_expect_null(cfg.metrics_listen, "no metrics port unless asked for");
	defender_config_fini(&cfg);

	cr_assert_eq(defender_config_parse(v4, strlen(v4), "d.conf", &cfg, &err), 0, "%s", err.msg);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&cfg.metrics_addr;
	cr_expect_str_eq(cfg.metrics_listen, "127.0.0.1:9464");
	cr_expect_eq(sin->sin_family, AF_INET);
	cr_expect_eq(ntohs(sin->sin_port), 9464);
	cr_expect_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	cr_expect_eq(cfg.metrics_addr_len, sizeof(*sin));
	defender_config_fini(&cfg);

	cr_assert_eq(defender_config_parse(v6, strlen(v6), "d.conf", &cfg, &err), 0, "%s", err.msg);
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&cfg.metrics_addr;
	cr_expect_eq(sin6->sin6_family, AF_INET6);
	cr_expect_eq(ntohs(sin6->sin6_port), 9465);
	cr_expect(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	defender_config_fini(&cfg);

	fails(BASE "metrics_listen = localhost:9464\n", "d.conf:5: metrics_listen must be");
	fails(BASE "metrics_listen = 127.0.0.1\n", "metrics_listen must be");
	fails(BASE "metrics_listen = 127.0.0.1:0\n", "metrics_listen must be");
	fails(BASE "metrics_listen = 127.0.0.1:65536\n", "metrics_listen must be");
	fails(BASE "metrics_listen = 127.0.0.1:94x\n", "metrics_listen must be");
	fails(BASE "metrics_listen = ::1:9464\n", "metrics_listen must be");
	fails(BASE "metrics_listen = [::1]9464\n", "metrics_listen must be");
	fails(BASE "metrics_listen = [127.0.0.1]:9464\n", "metrics_listen must be");
	fails(BASE "metrics_listen = 127.0.0.1:1\nmetrics_listen = 127.0.0.1:2\n",
	      "'metrics_listen' given twice");
}
