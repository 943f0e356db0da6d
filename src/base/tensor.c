/* Look-ups in the named tensor table. */
#include "tokdrop/base/tensor.h"

#include <string.h>

int td_tensor_find(const td_tensor_info *tensors, int n_tensors, const char *name)
{
    for (int i = 0; i < n_tensors; i++)
        if (strcmp(tensors[i].name, name) == 0) return i;
    return -1;
}
