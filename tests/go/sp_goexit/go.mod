module sp_goexit

go 1.19
