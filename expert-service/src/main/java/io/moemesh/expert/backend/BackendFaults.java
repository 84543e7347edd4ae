package io.moemesh.expert.backend;

/** Which JVM Errors of a backend's load or compute end the service, and which only the call that hit them. */
public final class BackendFaults {

    private BackendFaults() {
    }

    /**
     * True for the VM's own errors (OutOfMemoryError, StackOverflowError, UnknownError): never answered around, they
     * go on (-XX:+ExitOnOutOfMemoryError ends the service, its supervisor restarts it). False for an InternalError,
     * a VirtualMachineError too but what the JDK throws for a fault on a mapped file ("a fault occurred in an unsafe
     * memory access operation": MemorySegment.load of, or a read from, a weights file truncated under its mapping):
     * that call's failure, answered INTERNAL; and false for every other Error.
     */
    public static boolean fatal(Error e) {
        return e instanceof VirtualMachineError && !(e instanceof InternalError);
    }
}
