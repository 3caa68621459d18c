//===- QuantTest.cpp - weight formats: conversions and GGUF blocks --------===//
//
// Known values for the 16-bit conversions, and hand-derived bytes of one
// Q8_0 and one Q4_0 block (ggml's reference quantizers), so a change that
// breaks compatibility with GGUF data fails here.
//
//===----------------------------------------------------------------------===//

#include "moe/Support/Quant.h"
#include "moe/Support/Random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace moe;

namespace {

TEST(Quant, Bf16RoundsToNearestEven) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(floatToBf16(1.0f + 0x1p-8f), 0x3F80);      // tie, to even
  EXPECT_EQ(floatToBf16(1.0f + 3 * 0x1p-8f), 0x3F82);  // tie, to even
  EXPECT_EQ(floatToBf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  EXPECT_EQ(floatToBf16(-2.0f), 0xC000);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(NAN))));
  EXPECT_EQ(bf16ToFloat(0x3F81), 1.0f + 0x1p-7f);
}

TEST(Quant, F16IsIeeeHalf) {
  EXPECT_EQ(floatToF16(1.0f), 0x3C00);
  EXPECT_EQ(floatToF16(-2.0f), 0xC000);
  EXPECT_EQ(floatToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToF16(65520.0f), 0x7C00); // rounds to infinity
  EXPECT_EQ(floatToF16(0x1p-24f), 0x0001); // smallest subnormal
  EXPECT_EQ(floatToF16(0.1f), 0x2E66);
  EXPECT_EQ(f16ToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(f16ToFloat(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(NAN))));
}

std::vector<float> ramp() {
  std::vector<float> x(kQuantBlock);
  for (int j = 0; j < kQuantBlock; ++j)
    x[j] = float(j - 16); // -16 .. 15: the largest magnitude is negative
  return x;
}

TEST(Quant, Q4_0BlockMatchesGgml) {
  std::vector<float> x = ramp();
  std::vector<unsigned char> block(storedRowElements(WeightFormat::Q4_0, kQuantBlock));
  ASSERT_EQ(block.size(), 18u);
  quantizeRows(WeightFormat::Q4_0, x.data(), 1, kQuantBlock, block.data(), nullptr);
  // d = max / -8 = -16 / -8 = 2 (f16 0x4000, little endian).
  EXPECT_EQ(block[0], 0x00);
  EXPECT_EQ(block[1], 0x40);
  for (int j = 0; j < 16; ++j) {
    // q = min(15, trunc(x / d + 8.5)): x = j - 16 and x = j.
    int lo = std::min(15, int((j - 16) / 2.0 + 8.5));
    int hi = std::min(15, int(j / 2.0 + 8.5));
    EXPECT_EQ(block[2 + j], lo | (hi << 4)) << j;
  }
  std::vector<float> back(kQuantBlock);
  dequantizeRow(WeightFormat::Q4_0, block.data(), 0.0f, kQuantBlock, back.data());
  EXPECT_EQ(back[0], -16.0f);
  EXPECT_EQ(back[31], 14.0f); // q = 15 after the clamp: 2 * (15 - 8)
}

TEST(Quant, Q8_0BlockMatchesGgml) {
  std::vector<float> x = ramp();
  std::vector<unsigned char> block(storedRowElements(WeightFormat::Q8_0, kQuantBlock));
  ASSERT_EQ(block.size(), 34u);
  quantizeRows(WeightFormat::Q8_0, x.data(), 1, kQuantBlock, block.data(), nullptr);
  uint16_t d = uint16_t(block[0] | (block[1] << 8));
  EXPECT_EQ(d, floatToF16(16.0f / 127.0f));
  float id = 127.0f / 16.0f;
  for (int j = 0; j < kQuantBlock; ++j)
    EXPECT_EQ(int8_t(block[2 + j]), int8_t(std::round(x[j] * (1.0f / (16.0f / 127.0f)))))
        << j << " " << id;
  EXPECT_EQ(int8_t(block[2]), -127);
}

TEST(Quant, RoundTripsWithinTheFormatsBound) {
  const int64_t rows = 5, k = 96;
  Rng rng(7);
  std::vector<float> w(rows * k);
  for (float &v : w)
    v = rng.uniform(-1.0f, 1.0f);
  for (int f = 0; f <= int(WeightFormat::Q4_0); ++f) {
    auto format = WeightFormat(f);
    int64_t rowElems = storedRowElements(format, k);
    std::vector<unsigned char> q(rows * rowElems * dtypeSize(storageDType(format)));
    std::vector<float> scales(rows), back(k);
    quantizeRows(format, w.data(), rows, k, q.data(), scales.data());
    for (int64_t r = 0; r < rows; ++r) {
      dequantizeRow(format, q.data() + r * rowElems * dtypeSize(storageDType(format)),
                    scales[r], k, back.data());
      for (int64_t j = 0; j < k; ++j)
        EXPECT_LE(std::fabs(back[j] - w[r * k + j]), quantizationErrorBound(format) * 1.0 + 1e-7)
            << weightFormatName(format) << " row " << r << " col " << j;
    }
  }
}

TEST(Quant, ActivationRounding) {
  std::vector<float> x = ramp(), y(kQuantBlock);
  roundActivations(ActivationPrecision::Q8_0, x.data(), kQuantBlock, y.data());
  float d = f16ToFloat(floatToF16(16.0f / 127.0f));
  EXPECT_EQ(y[0], -127 * d);
  roundActivations(ActivationPrecision::BF16, x.data(), kQuantBlock, y.data());
  EXPECT_EQ(y[3], -13.0f);
  WeightFormat f;
  EXPECT_TRUE(parseWeightFormat("q4_0", f) && f == WeightFormat::Q4_0);
  EXPECT_FALSE(parseWeightFormat("q4_1", f));
}

} // namespace
