// Simple dual-port SRAM model: one synchronous read port (1-cycle latency, read-before-write),
// one write port with a byte mask. No reset; contents start at zero.
// The Verilog twin of tilelab.hdl.memories.SRAM's Amaranth model (used for large memories, whose
// Amaranth conversion would spell out every word's initial value).
module tilelab_sram #(
    parameter integer W = 16,        // bytes per word
    parameter integer AW = 10,       // address bits
    parameter integer DEPTH = 1024   // words
) (
    input  wire             clk,
    input  wire             rd_en,
    input  wire [AW-1:0]    rd_addr,
    output reg  [8*W-1:0]   rd_data,
    input  wire             wr_en,
    input  wire [AW-1:0]    wr_addr,
    input  wire [8*W-1:0]   wr_data,
    input  wire [W-1:0]     wr_mask
);
    reg [8*W-1:0] mem [0:DEPTH-1];
    reg [8*W-1:0] merged;
    integer i, b;
    initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
    always @(posedge clk) begin
        if (rd_en) rd_data <= mem[rd_addr];
        if (wr_en) begin
            // Blocking write after the read above (a read sees the old word); only this block
            // touches mem, and Icarus mis-orders non-blocking writes to memory words.
            merged = mem[wr_addr];
            for (b = 0; b < W; b = b + 1)
                if (wr_mask[b]) merged[8*b +: 8] = wr_data[8*b +: 8];
            mem[wr_addr] = merged;
        end
    end
endmodule
