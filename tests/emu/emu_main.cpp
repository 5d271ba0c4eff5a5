// The shared half of the kernel emulator (see emu_prims.hpp): threads,
// barriers, warp scratch, deferred cp.async copies and the launch.
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "emu_prims.hpp"

thread_local emu_dim3 threadIdx;
thread_local emu_dim3 blockIdx;
thread_local emu_dim3 gridDim;
alignas(128) unsigned short smem[1 << 17];

namespace {

struct barrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned n = 0, count = 0, gen = 0;
    void wait() {
        std::unique_lock<std::mutex> lk(m);
        unsigned g = gen;
        if (++count == n) {
            count = 0;
            gen++;
            cv.notify_all();
        } else {
            cv.wait(lk, [&] { return gen != g; });
        }
    }
};

barrier block_bar;
std::vector<barrier *> warp_bars;
std::vector<unsigned> warp_words; // per warp: 32 lanes x 16 words
std::vector<float> shfl;          // per thread
unsigned block_threads;

struct pending {
    unsigned dst;
    unsigned char bytes[16];
};
thread_local std::vector<pending> copies;

} // namespace

void emu_sync_block() { block_bar.wait(); }
void emu_sync_warp() { warp_bars[threadIdx.x / 32]->wait(); }
unsigned *emu_warp_words() { return &warp_words[(threadIdx.x / 32) * 32 * 16]; }

float emu_shfl_xor(float v, int mask) {
    shfl[threadIdx.x] = v;
    emu_sync_warp();
    float r = shfl[(threadIdx.x & ~31u) | ((threadIdx.x & 31) ^ (unsigned)mask)];
    emu_sync_warp();
    return r;
}

void emu_cp_async(unsigned dst, const void *src, bool pred) {
    pending p;
    p.dst = dst;
    // The source is read at issue time; the shared-memory write waits for
    // cp.async.wait_group, as on the GPU.
    if (pred) std::memcpy(p.bytes, src, 16);
    else std::memset(p.bytes, 0, 16);
    copies.push_back(p);
}

void emu_cp_wait() {
    for (const pending &p : copies) std::memcpy((char *)smem + p.dst, p.bytes, 16);
    copies.clear();
}

float emu_to_float(unsigned short h, bool bf16) {
    if (bf16) {
        unsigned u = (unsigned)h << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    unsigned sign = (h >> 15) & 1, exp = (h >> 10) & 31, man = h & 1023;
    float v;
    if (exp == 0) v = std::ldexp((float)man, -24);
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = std::ldexp((float)(man | 1024), (int)exp - 25);
    return sign ? -v : v;
}

unsigned short emu_from_float(float f, bool bf16) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    if (bf16) {
        if ((u & 0x7fffffff) > 0x7f800000) return (unsigned short)((u >> 16) | 64);
        u += 0x7fff + ((u >> 16) & 1); // round to nearest even
        return (unsigned short)(u >> 16);
    }
    // fp16, round to nearest even, through double for simplicity.
    unsigned short sign = (unsigned short)((u >> 16) & 0x8000);
    float a = std::fabs(f);
    if (std::isnan(f)) return 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;
    if (a < std::ldexp(1.0f, -14)) { // subnormal: units of 2^-24
        long m = std::lrint(std::ldexp((double)a, 24));
        return (unsigned short)(sign | m);
    }
    int e;
    double fr = std::frexp((double)a, &e); // a = fr * 2^e, fr in [0.5, 1)
    long m = std::lrint(std::ldexp(fr, 11)); // 11 significant bits
    if (m == 2048) {
        m = 1024;
        e++;
    }
    unsigned exp = (unsigned)(e - 1 + 15);
    if (exp >= 31) return sign | 0x7c00;
    return (unsigned short)(sign | exp << 10 | (m & 1023));
}

// Runs kernel over the grid, one block at a time, `threads` threads each.
extern "C" int emu_launch(void (*kernel)(const void *), const void *params, unsigned gx,
                          unsigned gy, unsigned gz, unsigned threads) {
    block_threads = threads;
    block_bar.n = threads;
    for (barrier *b : warp_bars) delete b;
    warp_bars.clear();
    for (unsigned w = 0; w < threads / 32; w++) {
        warp_bars.push_back(new barrier);
        warp_bars.back()->n = 32;
    }
    warp_words.assign(threads / 32 * 32 * 16, 0);
    shfl.assign(threads, 0.f);
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                // Garbage in shared memory, as on a GPU: the kernel must not
                // read what it did not write.
                std::memset(smem, 0xA5, sizeof smem);
                std::vector<std::thread> ts;
                for (unsigned t = 0; t < threads; t++)
                    ts.emplace_back([=] {
                        threadIdx = emu_dim3{t, 0, 0};
                        blockIdx = emu_dim3{x, y, z};
                        gridDim = emu_dim3{gx, gy, gz};
                        kernel(params);
                    });
                for (auto &t : ts) t.join();
            }
    for (barrier *b : warp_bars) delete b;
    warp_bars.clear();
    return 0;
}
