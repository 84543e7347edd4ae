package io.moemesh.model.kernel;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Moves the calling thread to the lowest CPU priority (Linux nice 19) for work that should only take CPU nobody
 * else wants: the kernel warm-up after a service reports SERVING. On a node where other services are still starting
 * (the local mesh starts five JVMs on two cores at once; a Kubernetes node scaling up starts several pods) a warm-up
 * at normal priority takes a full core from their starts; at nice 19 the kernel's fair scheduler gives it about 1.5%
 * of a contended core (weight 15 against 1024, Linux {@code sched_prio_to_weight}) and all of an idle one.
 *
 * <p>Linux applies {@code setpriority(PRIO_PROCESS, tid, ...)} to the one thread {@code tid} names (man 2
 * setpriority, "Linux notes"); raising one's own nice value needs no privilege. The JDK's {@code Thread.setPriority}
 * does nothing here by default ({@code -XX:ThreadPriorityPolicy=0}), hence the two libc calls through the FFM API.
 * Anything else (another OS, native access refused, a failing call) leaves the priority as it was: only the start
 * of the other processes is slower then, never a result different.
 */
public final class BackgroundPriority {
    /** {@code PRIO_PROCESS} in {@code <sys/resource.h>}. */
    private static final int PRIO_PROCESS = 0;
    /** The lowest priority, the largest nice value. */
    static final int LOWEST = 19;

    private BackgroundPriority() {
    }

    /** Lowers the calling thread to nice {@link #LOWEST}; whether that worked. */
    public static boolean lowerCurrentThread() {
        if (!System.getProperty("os.name", "").startsWith("Linux")) {
            return false;
        }
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup libc = linker.defaultLookup();
            MethodHandle gettid = linker.downcallHandle(libc.find("gettid").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT));
            MethodHandle setpriority = linker.downcallHandle(libc.find("setpriority").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_INT));
            int tid = (int) gettid.invokeExact();
            return (int) setpriority.invokeExact(PRIO_PROCESS, tid, LOWEST) == 0;
        } catch (Throwable t) {
            return false; // no gettid (glibc < 2.30, musl), native access refused: keep the priority
        }
    }
}
