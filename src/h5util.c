/* Internal HDF5 plumbing (h5util.h): failure messages from HDF5's error
 * stack, silencing its automatic printing, and id cleanup. */
#include "h5util.h"

#include <stdio.h>
#include <string.h>

static herr_t why_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    td_h5_why *w = data;
    if (!e->desc) return 0;
    if (n == 0) snprintf(w->desc, sizeof(w->desc), "%s", e->desc);
    if (strstr(e->desc, "truncated")) w->truncated = true;
    return 0;
}

td_h5_why td_h5_get_why(void)
{
    td_h5_why w = {"no detail", false};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, why_cb, &w);
    return w;
}

td_status td_h5_fail(td_error *err, const char *path, const char *what, const char *call,
                     const char *file, int line)
{
    td_h5_why w = td_h5_get_why();
    const char *slash = strrchr(file, '/');
    const char *base = slash ? slash + 1 : file;
    if (what)
        return td_error_set(err, TD_ERR_IO, "%s: %s: HDF5 call %s failed: %s (%s:%d)", path, what,
                            call, w.desc, base, line);
    return td_error_set(err, TD_ERR_IO, "%s: HDF5 call %s failed: %s (%s:%d)", path, call, w.desc,
                        base, line);
}

td_h5_quiet td_h5_quiet_begin(void)
{
    td_h5_quiet q = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void td_h5_quiet_end(td_h5_quiet q)
{
    H5Eset_auto2(H5E_DEFAULT, q.fn, q.data);
}

void td_h5_close_id(hid_t id, herr_t (*close_fn)(hid_t))
{
    if (id >= 0) close_fn(id);
}
