/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vigilctl's rule files (console/cli/rulefile.c): YAML read as the JSON it
 * stands for, what is refused, and YAML written back that reads as the same
 * values.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/rulefile.h"

static json_t *yaml(const char *text)
{
	char why[256] = "";
	json_t *v = NULL;

	cr_assert_eq(rulefile_yaml_parse(text, strlen(text), &v, why, sizeof(why)), 0,
		     "refused: %s\n%s", why, text);
	return v;
}

static void refused(const char *text, const char *reason)
{
	char why[256] = "";
	json_t *v = NULL;

	cr_expect_eq(rulefile_yaml_parse(text, strlen(text), &v, why, sizeof(why)), -EINVAL,
		     "accepted:\n%s", text);
	cr_expect(strstr(why, reason) != NULL, "'%s' lacks '%s'", why, reason);
	json_decref(v);
}

Test(rulefile, plain_scalars_are_typed_and_quoted_ones_are_strings)
{
	json_t *v = yaml("a: ~\nb: null\nc:\nd: true\ne: FALSE\nf: 22\ng: -7\nh: 1.5\ni: 2e3\n"
			 "j: yes\nk: \"22\"\nl: 'true'\nm: 99999999999999999999999\nn: 0x10\n"
			 "o: !!str 5\np: web-*\nq: [22, tcp:80]\nr: {x: 1}\n");
	char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

	cr_expect_str_eq(text,
			 "{\"a\":null,\"b\":null,\"c\":null,\"d\":true,\"e\":false,\"f\":22,"
			 "\"g\":-7,\"h\":1.5,\"i\":2000.0,\"j\":\"yes\",\"k\":\"22\","
			 "\"l\":\"true\",\"m\":\"99999999999999999999999\",\"n\":\"0x10\","
			 "\"o\":\"5\",\"p\":\"web-*\",\"q\":[22,\"tcp:80\"],\"r\":{\"x\":1}}");
	free(text);
	json_decref(v);
}

Test(rulefile, what_does_not_map_onto_json_is_refused)
{
	refused("a: &x 1\nb: *x\n", "anchors");
	refused("a: [1]\nb: *x\n", "line 2");
	refused("a: !!int 1\n", "tags");
	refused("a: !custom {}\n", "tags");
	refused("a: 1\na: 2\n", "line 2: key 'a' given twice");
	refused("a: 1\n---\nb: 2\n", "a second YAML document");
	refused("? [a]\n: 1\n", "a key must be");
	refused("a: [1, 2\n", "line");
	refused("", "empty");
	refused("a: \"\\0\"\n", "NUL");
	{
		char deep[512];
		size_t o = 0;

		for (int i = 0; i < 70; i++)
			deep[o++] = '[';
		for (int i = 0; i < 70; i++)
			deep[o++] = ']';
		deep[o] = '\0';
		refused(deep, "nested deeper than 64");
	}
}

/* v written as YAML and read back. */
static json_t *round_trip(const json_t *v, char **ret_text)
{
	char why[256] = "", *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	json_t *back;

	cr_assert_not_null(f);
	cr_assert_eq(rulefile_yaml_write(f, v, why, sizeof(why)), 0, "%s", why);
	fclose(f);
	back = yaml(text);
	*ret_text = text;
	return back;
}

Test(rulefile, yaml_written_reads_back_as_the_same_values)
{
	json_t *v = json_loads(
	    "{\"format\":\"vigil-rules/1\",\"version\":7,\"rules\":[{\"name\":\"true\","
	    "\"enabled\":false,\"comment\":\"line 1\\n\\tline 2: # not a comment\","
	    "\"strings\":[\"22\",\"\",\"~\",\"null\",\"1.5\",\"-3\",\"a: b\",\"- x\",\"#c\","
	    "\"[x]\",\"{y}\",\" lead\",\"trail \",\"*\",\"&a\",\"!t\",\"|\",\">\",\"'q'\","
	    "\"\\\"dq\\\"\",\"ünïcödé\",\"%x\",\"@x\",\"`x\",\"x\\\\y\",\"10.0.0.0/8:22\","
	    "\"[2001:db8::/32]:443\",\"yes\",\"False\"],"
	    "\"numbers\":[0,-1,9007199254740993,0.1,1e300],\"nothing\":null,\"empty\":[],"
	    "\"obj\":{},\"nested\":{\"a\":{\"b\":[[1],[]]}}}]}",
	    0, NULL);
	char *text;
	json_t *back;

	cr_assert_not_null(v);
	back = round_trip(v, &text);
	cr_expect(json_equal(v, back), "not the same after YAML:\n%s\n%s", text,
		  json_dumps(back, JSON_COMPACT));
	/* Readable: plain where plain reads the same, quoted where it would not. */
	cr_expect(strstr(text, "format: vigil-rules/1\n") != NULL, "%s", text);
	cr_expect(strstr(text, "- name: \"true\"\n") != NULL, "%s", text);
	cr_expect(strstr(text, "  comment: \"line 1\\n\\tline 2: # not a comment\"\n") != NULL,
		  "%s", text);
	cr_expect(strstr(text, "  - \"22\"\n") != NULL, "%s", text);
	cr_expect(strstr(text, "  empty: []\n") != NULL, "%s", text);
	free(text);
	json_decref(back);
	json_decref(v);
}

Test(rulefile, files_are_read_as_json_or_yaml)
{
	char dir[] = "/tmp/vigil-rulefile-XXXXXX", path[128], why[256];
	json_t *v = NULL;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.json", dir);
	f = fopen(path, "w");
	fputs("{\"name\": \"a\", \"name\": \"b\"}", f);
	fclose(f);
	cr_expect_eq(rulefile_read(path, &v, why, sizeof(why)), -EINVAL);
	cr_expect(strstr(why, "duplicate") != NULL, "%s", why);
	/* No telling extension: JSON when it starts like JSON. */
	snprintf(path, sizeof(path), "%s/rule", dir);
	f = fopen(path, "w");
	fputs("  \n{\"name\": \"a\", \"files\": {}}", f);
	fclose(f);
	cr_assert_eq(rulefile_read(path, &v, why, sizeof(why)), 0, "%s", why);
	cr_expect_str_eq(json_string_value(json_object_get(v, "name")), "a");
	json_decref(v);
	f = fopen(path, "w");
	fputs("name: a\nfiles: {}\n", f);
	fclose(f);
	cr_assert_eq(rulefile_read(path, &v, why, sizeof(why)), 0, "%s", why);
	cr_expect(json_is_object(json_object_get(v, "files")));
	json_decref(v);
	/* .yaml is YAML even when it looks like JSON (YAML takes it too). */
	snprintf(path, sizeof(path), "%s/r.yaml", dir);
	f = fopen(path, "w");
	fputs("{\"name\": \"a\", files: {}}", f);
	fclose(f);
	cr_assert_eq(rulefile_read(path, &v, why, sizeof(why)), 0, "%s", why);
	json_decref(v);
	unlink(path);
	snprintf(path, sizeof(path), "%s/missing.yaml", dir);
	cr_expect_eq(rulefile_read(path, &v, why, sizeof(why)), -ENOENT);
	cr_expect(strstr(why, "missing.yaml") != NULL, "%s", why);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	cr_expect_eq(system(path), 0);
}
