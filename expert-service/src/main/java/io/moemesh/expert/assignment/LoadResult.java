package io.moemesh.expert.assignment;

/**
 * @param loadedCount experts of the assignment resident after loading (fewer than assigned when they exceed
 *                    the memory budget: the rest are paged in on use)
 */
public record LoadResult(long epoch, int loadedCount, long residentBytes) {
}
