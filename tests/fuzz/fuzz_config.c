/* Fuzzes the config as `tokdrop train CONFIG --set ...` reads it
 * (td_cli_load_config: defaults, the YAML file, the overrides, resolution,
 * validation, the memory check). Input: the YAML text, then up to 8
 * `--set` assignments, each after a NUL byte. A config that loads must
 * also survive what a run does with it: written back as YAML (the run
 * directory's config.yaml, a checkpoint's config) it reads back to the
 * same text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_util.h"

#define MAX_SETS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t yaml_len = strlen(text);
    const char *sets[MAX_SETS];
    int n_sets = 0;
    for (size_t at = yaml_len; at < size && n_sets < MAX_SETS; at += strlen(text + at + 1) + 1)
        sets[n_sets++] = text + at + 1;
    const char *path = fz_write(0, data, yaml_len);

    td_config cfg;
    td_error err = {0};
    bool ok = td_cli_load_config(&cfg, path, sets, n_sets, 1, &err);
    fz_check_error(ok ? TD_OK : TD_ERR_CONFIG, &err, "td_cli_load_config");
    if (ok) {
        char *yaml = td_config_to_yaml(&cfg);
        td_config back;
        td_config_defaults(&back);
        td_status st = td_config_load_text(&back, yaml, "config.yaml", &err);
        char *again = st == TD_OK ? td_config_to_yaml(&back) : NULL;
        if (!again || strcmp(yaml, again) != 0) {
            fprintf(stderr, "fuzz_config: the resolved config does not read back (%s):\n%s\n---\n%s\n",
                    st == TD_OK ? "it differs" : err.msg, yaml, again ? again : "");
            abort();
        }
        free(again);
        free(yaml);
    }
    free(text);
    return 0;
}
