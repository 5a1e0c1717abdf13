/*
 * nas_decide_driver.c -- runs an exported model's "unknown" decision (model_decide.h) on a batch of
 * clips' votes and prints each decision, for the exporter's check against Python
 * (nas.export.verify.run_decide).
 *
 * `nas_decide_driver <cases.bin>`: the file holds int32 values (host byte order): the number of
 * clips, the number of classes, then per clip its windows and its votes per class. Prints one
 * decision per line (a class index, or NAS_MODEL_UNKNOWN) and "done <count>"; exit 1 on a malformed
 * file.
 */
#include <stdint.h>
#include <stdio.h>

#include "model_decide.h"

int main(int argc, char **argv)
{
    int32_t head[2];
    int32_t row[1 + NAS_MODEL_NUM_CLASSES];
    int32_t i;
    FILE *f;
    if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL)
    {
        fprintf(stderr, "usage: nas_decide_driver <cases.bin>\n");
        return 1;
    }
    if (fread(head, sizeof head[0], 2, f) != 2 || head[1] != NAS_MODEL_NUM_CLASSES)
    {
        fprintf(stderr, "expected %d classes\n", NAS_MODEL_NUM_CLASSES);
        fclose(f);
        return 1;
    }
    for (i = 0; i < head[0]; i++)
    {
        if (fread(row, sizeof row[0], 1 + NAS_MODEL_NUM_CLASSES, f) != (size_t)(1 + NAS_MODEL_NUM_CLASSES))
        {
            fprintf(stderr, "clip %ld: file too short\n", (long)i);
            fclose(f);
            return 1;
        }
        printf("%d\n", nas_model_decide(&row[1], row[0]));
    }
    fclose(f);
    printf("done %ld\n", (long)head[0]);
    return 0;
}
