/*
 * weft from C: index a folder of photos, search it by text, image and id,
 * classify a photo zero-shot and embed a text.
 *
 *   cargo build -p weft-capi
 *   cc -std=c11 -Wall -Wextra -Iinclude examples/c/weft_example.c \
 *      -Ltarget/debug -lweft_capi -Wl,-rpath,target/debug -o weft_example
 *   ./weft_example .weft /tmp/photos.weft .weft/data/photos "a photo of a cat"
 *
 * Arguments: project folder, collection folder, photo folder (holding
 * chelsea.png), query, bundle (name or folder; default starter-vl).
 *
 * Prints one "hit RANK ID SCORE" line per text-query hit (scripts/test.sh
 * compares them with `weft search`). Exits 1 on the first unexpected error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#define CHECK(call)                                                             \
  do {                                                                          \
    weft_status s_ = (call);                                                    \
    if (s_ != WEFT_OK) {                                                        \
      fprintf(stderr, "%s:%d: %s failed (%d): %s\n", __FILE__, __LINE__, #call, \
              (int)s_, weft_last_error());                                      \
      exit(1);                                                                  \
    }                                                                           \
  } while (0)

/* Reads a whole file; the caller frees the buffer. */
static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)n);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "%s: cannot read\n", path);
    exit(1);
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void print_hits(const char *what, const weft_results *r) {
  for (size_t i = 0; i < weft_results_len(r); i++) {
    printf("%s %zu %s %.4f\n", what, i + 1, weft_results_id(r, i), weft_results_score(r, i));
  }
}

int main(int argc, char **argv) {
  const char *project = argc > 1 ? argv[1] : ".weft";
  const char *dir = argc > 2 ? argv[2] : "/tmp/weft-c-example.weft";
  const char *photos = argc > 3 ? argv[3] : ".weft/data/photos";
  const char *query = argc > 4 ? argv[4] : "a photo of a cat";
  const char *bundle = argc > 5 ? argv[5] : "starter-vl";

  weft_engine *engine = NULL;
  CHECK(weft_engine_new(project, "{\"device\": \"cpu\"}", &engine));
  char *ort = NULL;
  CHECK(weft_engine_ort_version(engine, &ort));
  printf("weft %s, ONNX Runtime %s\n", weft_version(), ort);
  weft_string_free(ort);

  /* Index the folder (incremental: a second run finds nothing new). */
  weft_collection *photos_c = NULL;
  CHECK(weft_collection_open(engine, dir, bundle, &photos_c));
  weft_index_report report;
  char *errors = NULL;
  CHECK(weft_collection_index(photos_c, photos, &report, &errors));
  printf("indexed %zu files (%zu unchanged), %zu items added, %zu errors\n",
         report.files_indexed, report.files_unchanged, report.items_added, report.errors);
  if (errors) {
    printf("%s\n", errors);
    weft_string_free(errors);
  }

  /* Add a photo from memory and a note with a payload, then take them out
     again: staged changes become visible at commit, all or nothing. */
  char cat_path[4096];
  snprintf(cat_path, sizeof cat_path, "%s/chelsea.png", photos);
  size_t cat_len = 0;
  unsigned char *cat = read_file(cat_path, &cat_len);
  CHECK(weft_collection_add(photos_c, "memory:cat", WEFT_IMAGE, cat, cat_len,
                            "{\"from\": \"memory\"}"));
  const char *note = "a note about cats";
  CHECK(weft_collection_add(photos_c, "note:1", WEFT_TEXT, (const unsigned char *)note,
                            strlen(note), NULL));
  size_t changes = 0, items = 0;
  CHECK(weft_collection_commit(photos_c, &changes));
  CHECK(weft_collection_len(photos_c, &items));
  printf("committed %zu changes, %zu items\n", changes, items);

  weft_results *r = NULL;
  CHECK(weft_search(photos_c, WEFT_IMAGE, cat, cat_len, 3, NULL, "{\"from\": \"memory\"}", &r));
  printf("filtered image search: %s (payload %s)\n", weft_results_id(r, 0),
         weft_results_payload(r, 0));
  weft_results_free(r);

  bool existed = false;
  CHECK(weft_collection_delete(photos_c, "memory:cat", &existed));
  CHECK(weft_collection_delete(photos_c, "note:1", NULL));
  CHECK(weft_collection_commit(photos_c, &changes));
  CHECK(weft_collection_len(photos_c, &items));
  printf("deleted (existed: %d), %zu items\n", existed, items);

  /* Bad input is an error that names it; the collection is untouched. */
  static const unsigned char junk[] = {0x89, 'P', 'N', 'G', 0, 1, 2, 3};
  weft_status s = weft_collection_add(photos_c, "junk", WEFT_IMAGE, junk, sizeof junk, NULL);
  printf("junk image: status %d: %s\n", (int)s, weft_last_error());
  if (s != WEFT_INVALID_INPUT) return 1;
  s = weft_search(photos_c, WEFT_TEXT, (const unsigned char *)"x", 1, 5, "best", NULL, &r);
  printf("unknown scorer: status %d: %s\n", (int)s, weft_last_error());
  if (s != WEFT_INVALID_ARGUMENT || r != NULL) return 1;

  /* Text to image: these are the lines the test compares with the CLI. */
  CHECK(weft_search(photos_c, WEFT_TEXT, (const unsigned char *)query, strlen(query), 5, NULL,
                    NULL, &r));
  print_hits("hit", r);
  char first[4096];
  snprintf(first, sizeof first, "%s", weft_results_id(r, 0));
  weft_results_free(r);

  /* Late interaction, and "more like this" by id. */
  CHECK(weft_search(photos_c, WEFT_TEXT, (const unsigned char *)query, strlen(query), 3, "filip",
                    NULL, &r));
  print_hits("filip", r);
  weft_results_free(r);
  CHECK(weft_search(photos_c, WEFT_ID, (const unsigned char *)first, strlen(first), 3, NULL, NULL,
                    &r));
  print_hits("like", r);
  weft_results_free(r);

  /* Zero-shot classification of the photo. */
  const char *labels[] = {"cat", "dog", "cup of coffee", "rocket"};
  weft_classification *c = NULL;
  CHECK(weft_classify(engine, bundle, WEFT_IMAGE, cat, cat_len, labels, 4, &c));
  for (size_t i = 0; i < weft_classification_len(c); i++) {
    printf("label %s %.3f\n", weft_classification_label(c, i),
           weft_classification_probability(c, i));
  }
  weft_classification_free(c);
  free(cat);

  /* Embeddings into the caller's buffers. */
  float embedding[2048];
  size_t dim = 0, n_tokens = 0;
  CHECK(weft_embed(engine, bundle, WEFT_TEXT, (const unsigned char *)query, strlen(query),
                   embedding, sizeof embedding / sizeof *embedding, &dim));
  double norm = 0;
  for (size_t i = 0; i < dim; i++) norm += embedding[i] * embedding[i];
  s = weft_embed_tokens(engine, bundle, WEFT_TEXT, (const unsigned char *)query, strlen(query),
                        NULL, 0, &n_tokens, &dim);
  if (s != WEFT_BUFFER_TOO_SMALL) return 1;
  float *tokens = malloc(n_tokens * dim * sizeof *tokens);
  CHECK(weft_embed_tokens(engine, bundle, WEFT_TEXT, (const unsigned char *)query, strlen(query),
                          tokens, n_tokens * dim, &n_tokens, &dim));
  printf("embedding: %zu floats, norm %.3f; tokens: %zu x %zu\n", dim, norm, n_tokens, dim);
  free(tokens);

  char *providers = NULL;
  CHECK(weft_engine_providers(engine, bundle, &providers));
  printf("providers: %s\n", providers);
  weft_string_free(providers);

  weft_collection_free(photos_c);
  weft_engine_free(engine);
  return 0;
}
