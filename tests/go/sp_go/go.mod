module sp_go

go 1.19
