/* WordPiece (BERT) against llama.cpp's test vectors (bert-bge). WordPiece normalises
 * (lowercase, accents, whitespace), so there is no round trip to check. */
#include "tokenizer_vectors.h"

int main(void) {
    tv_check_vocab("bert-bge");
    return qr_test_finish("test_tokenizer_wpm");
}
