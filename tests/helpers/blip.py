"""The vocabulary of the tiny random BLIP captioner the data-stage tests build."""

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "street", "view", "of", "the", "with",
         "car", "cars", "tree", "trees", "building", "buildings", "road", "and", "sky", "house", "shop",
         "people", "bus", "sign", "red", "blue", "green", "old", "new", "."]
